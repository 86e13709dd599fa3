#include "control/app_bundle.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "common/app/bundle.h"
#include "common/app/minisign.h"
#include "common/file.h"

namespace herd::control {
namespace {

// Creates `path` with `content`, refusing to replace anything.
Status WriteNew(const std::string& path, const std::string& content, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return Status(errno == EEXIST ? StatusCode::kAlreadyExists : StatusCode::kInternal,
                  errno == EEXIST ? path + " exists; refusing to overwrite it"
                                  : "cannot create " + path + ": " + std::strerror(errno));
  }
  const bool ok =
      ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
      ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Status::Internal("cannot write " + path);
  }
  return Status::Ok();
}

}  // namespace

Result<Record> KeygenApp(const std::string& dir, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    return Status::Invalid("key name '" + name + "' must be a plain file name");
  }
  const std::string key = dir + "/" + name + ".key", pub = dir + "/" + name + ".pub";
  if (::access(key.c_str(), F_OK) == 0 || ::access(pub.c_str(), F_OK) == 0) {
    return Status(StatusCode::kAlreadyExists,
                  key + " or " + pub + " exists; refusing to overwrite");
  }
  auto k = app::GenerateKey();
  if (!k.ok()) return k.status();
  if (Status s = WriteNew(key, app::FormatSecretKey(*k), 0600); !s.ok()) return s;
  if (Status s = WriteNew(pub, app::FormatPublicKey(k->pub), 0644); !s.ok()) {
    ::unlink(key.c_str());
    return s;
  }
  const std::string id = app::KeyIdHex(k->id);
  return Record{
      {{"type", "app_key"}, {"key_id", id}, {"secret_key", key}, {"public_key", pub}},
      fmt::format("app key {}: {} (secret, 0600), {} (public, minisign format)", id, key, pub)};
}

Result<Record> PackApp(const std::string& dir, const std::string& out) {
  std::string target = out;
  if (target.empty()) {
    auto text = ReadFileToString(dir + "/app.yaml");
    if (!text.ok()) return text.status();
    auto spec = app::ParseAppYaml(*text, dir + "/app.yaml");
    if (!spec.ok()) return spec.status();
    target = spec->name + "-" + spec->version + ".herd";
  }
  auto m = app::Pack(dir, target);
  if (!m.ok()) return m.status();
  return Record{{{"type", "app_bundle"},
                 {"path", target},
                 {"name", m->app.name},
                 {"version", m->app.version},
                 {"sequence", m->app.sequence},
                 {"files", m->files.size()},
                 {"payload_bytes", m->payload_size},
                 {"payload_sha256", m->payload_sha256}},
                fmt::format("packed {} {} into {}: {} files, payload {} bytes (sha256 {}…); "
                            "unsigned: herd app sign {} --key KEY",
                            m->app.name, m->app.version, target, m->files.size(), m->payload_size,
                            m->payload_sha256.substr(0, 12), target)};
}

Result<Record> SignApp(const std::string& bundle, const std::string& key_path,
                       const std::string& minisig_path) {
  if (key_path.empty() == minisig_path.empty()) {
    return Status::Invalid(
        "sign needs --key KEY (a herd app key) or --minisig FILE (a signature "
        "minisign made of the manifest), one of them");
  }
  auto head = app::ReadHead(bundle);
  if (!head.ok()) return head.status();
  std::string sig;
  if (!key_path.empty()) {
    auto text = ReadFileToString(key_path, 1 << 16);
    if (!text.ok()) return text.status();
    auto key = app::ParseSecretKey(*text, key_path);
    if (!key.ok()) return key.status();
    auto made = app::Sign(*key, head->manifest_text,
                          head->manifest.app.name + " " + head->manifest.app.version +
                              " sequence " + std::to_string(head->manifest.app.sequence));
    if (!made.ok()) return made.status();
    sig = *made;
  } else {
    auto text = ReadFileToString(minisig_path, 1 << 16);
    if (!text.ok()) return text.status();
    if (auto read = app::ReadSignature(*text); !read.ok()) {
      return Status::Invalid(minisig_path + ": " + read.status().message());
    }
    sig = *text;
    if (sig.back() != '\n') sig += '\n';
  }
  auto info = app::ReadSignature(sig);
  if (!info.ok()) return info.status();
  const std::string id = app::KeyIdHex(info->key_id);
  for (const auto& existing : head->signatures) {
    auto other = app::ReadSignature(existing);
    if (other.ok() && other->key_id == info->key_id) {
      return Status(StatusCode::kAlreadyExists, bundle + " is already signed by key " + id);
    }
  }
  auto sigs = head->signatures;
  sigs.push_back(sig);
  if (Status s = app::WriteSignatures(bundle, sigs); !s.ok()) return s;
  return Record{
      {{"type", "app_signature"}, {"path", bundle}, {"key_id", id}, {"signatures", sigs.size()}},
      fmt::format("signed {} with key {} ({} signature{})", bundle, id, sigs.size(),
                  sigs.size() == 1 ? "" : "s")};
}

Result<Record> InspectApp(const std::string& bundle, const std::vector<std::string>& keys,
                          const std::string& manifest_out, const std::string& signatures_out) {
  auto head = app::ReadHead(bundle);
  if (!head.ok()) return head.status();
  std::vector<app::PublicKey> pubs;
  for (const auto& path : keys) {
    auto text = ReadFileToString(path, 1 << 16);
    if (!text.ok()) return text.status();
    auto k = app::ParsePublicKey(*text, path);
    if (!k.ok()) return k.status();
    pubs.push_back(*k);
  }
  const Status payload = app::VerifyPayload(bundle, head->manifest);
  const auto& a = head->manifest.app;
  nlohmann::json sigs = nlohmann::json::array();
  std::string text = fmt::format(
      "{} {} (sequence {}, data format {})\n  command: {}\n  payload: {} bytes, sha256 {}, {} "
      "chunks: {}\n  files: {}\n",
      a.name, a.version, a.sequence, a.data_format, fmt::join(a.command, " "),
      head->manifest.payload_size, head->manifest.payload_sha256, head->manifest.chunks.size(),
      payload.ok() ? "matches the manifest" : "DOES NOT MATCH: " + payload.message(),
      head->manifest.files.size());
  for (const auto& f : head->manifest.files) {
    text +=
        fmt::format("    {:04o} {:>10} {} {}\n", f.mode, f.size, f.sha256.substr(0, 12), f.path);
  }
  text += fmt::format("  signatures: {}", head->signatures.size());
  for (const auto& sig : head->signatures) {
    auto info = app::ReadSignature(sig);
    std::string id = info.ok() ? app::KeyIdHex(info->key_id) : "?";
    std::string verdict = info.ok() ? "unknown key" : "malformed: " + info.status().message();
    for (const auto& k : pubs) {
      if (!info.ok() || k.id != info->key_id) continue;
      auto v = app::Verify(k, head->manifest_text, sig);
      verdict = v.ok() ? "verified" : "BAD: " + v.status().message();
    }
    sigs.push_back({{"key_id", id},
                    {"status", verdict},
                    {"trusted_comment", info.ok() ? info->trusted_comment : ""}});
    text += fmt::format("\n    key {}: {}", id, verdict);
  }
  if (!manifest_out.empty()) {
    if (Status s = WriteFileAtomic(manifest_out, head->manifest_text); !s.ok()) return s;
  }
  if (!signatures_out.empty()) {
    std::string all;
    for (const auto& sig : head->signatures) all += sig;
    if (Status s = WriteFileAtomic(signatures_out, all); !s.ok()) return s;
  }
  nlohmann::json j = nlohmann::json::parse(head->manifest_text);
  return Record{{{"type", "app_bundle"},
                 {"path", bundle},
                 {"manifest", j},
                 {"payload_ok", payload.ok()},
                 {"payload_error", payload.ok() ? "" : payload.message()},
                 {"signatures", sigs}},
                text};
}

}  // namespace herd::control
