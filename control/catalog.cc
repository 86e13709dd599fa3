#include "control/catalog.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include "common/app/bundle.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/unique_fd.h"

namespace herd::control {
namespace {

using app::CatalogIndex;

std::string IndexPath(const std::string& dir) { return dir + "/" + app::kIndexFile; }
std::string SignaturePath(const std::string& dir) { return dir + "/" + app::kIndexSignatureFile; }

Result<app::SecretKey> LoadKey(const std::string& path) {
  auto text = ReadFileToString(path, 4096);
  if (!text.ok()) return text.status();
  return app::ParseSecretKey(*text, path);
}

// The index as it stands, verified with the catalogue's own key.
Result<CatalogIndex> ReadIndex(const std::string& dir, const app::PublicKey& key) {
  auto text = ReadFileToString(IndexPath(dir), app::kMaxIndexBytes);
  if (!text.ok()) {
    return Status(text.status().code(),
                  text.status().message() + " (herd catalog init " + dir + " makes one)");
  }
  auto sig = ReadFileToString(SignaturePath(dir), 64 << 10);
  if (!sig.ok()) return sig.status();
  return app::VerifyIndex(key, *text, *sig, IndexPath(dir));
}

// Signs `index` (its sequence one up) and replaces the signature, then the index.
Status Publish(const std::string& dir, const app::SecretKey& key, CatalogIndex* index) {
  index->sequence += 1;
  index->updated_unix = static_cast<int64_t>(std::time(nullptr));
  const std::string text = app::IndexText(*index);
  auto sig = app::Sign(key, text, fmt::format("herd catalog index sequence {}", index->sequence));
  if (!sig.ok()) return sig.status();
  if (Status s = WriteFileAtomic(SignaturePath(dir), *sig); !s.ok()) return s;
  return WriteFileAtomic(IndexPath(dir), text);
}

// A bundle copied into the folder under a temporary name, hashed as it was
// copied: checked there, then renamed to bundles/<sha256>.herd (Keep) or
// removed (the destructor), so that what is published is what was checked.
class StagedBundle {
 public:
  static Result<std::unique_ptr<StagedBundle>> Copy(const std::string& dir,
                                                    const std::string& from) {
    UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in.valid()) return Status::NotFound("cannot read " + from + ": " + std::strerror(errno));
    std::unique_ptr<StagedBundle> b(new StagedBundle);
    b->dir_ = dir;
    b->tmp_ = dir + "/bundles/.adding." + std::to_string(::getpid());
    UniqueFd out(::open(b->tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!out.valid()) {
      return Status::Internal("cannot create " + b->tmp_ + ": " + std::strerror(errno));
    }
    Sha256 hash;
    std::string buf(1 << 20, '\0');
    for (;;) {
      const ssize_t n = ::read(in.get(), buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0 || ::write(out.get(), buf.data(), n) != n) {
        return Status::Internal("cannot copy " + from + " into " + dir + ": " +
                                std::strerror(errno));
      }
      hash.Update(buf.data(), n);
      b->size_ += static_cast<uint64_t>(n);
    }
    if (::fsync(out.get()) != 0) return Status::Internal("cannot sync " + b->tmp_);
    b->sha_ = hash.HexDigest();
    return b;
  }
  ~StagedBundle() {
    if (!kept_) ::unlink(tmp_.c_str());
  }
  const std::string& path() const { return tmp_; }
  const std::string& sha256() const { return sha_; }
  uint64_t size() const { return size_; }
  Status Keep() {
    const std::string dest = dir_ + "/" + app::CatalogBundlePath(sha_);
    if (::rename(tmp_.c_str(), dest.c_str()) != 0) {
      return Status::Internal("cannot store " + dest + ": " + std::strerror(errno));
    }
    kept_ = true;
    return Status::Ok();
  }

 private:
  StagedBundle() = default;
  std::string dir_, tmp_, sha_;
  uint64_t size_ = 0;
  bool kept_ = false;
};

// An exclusive lock on the catalogue folder for one change (DIR/.lock):
// two `herd catalog add` at once would publish two indexes with one
// sequence. Held until the descriptor closes.
Result<UniqueFd> LockCatalog(const std::string& dir) {
  const std::string path = dir + "/.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid() || ::flock(fd.get(), LOCK_EX) != 0) {
    return Status::Internal("cannot lock " + path + ": " + std::strerror(errno));
  }
  return fd;
}

// The public key's base64 line (the second of its file).
std::string Channels(const app::CatalogApp& a) {
  std::vector<std::string> seen;
  for (const auto& v : a.versions) {
    if (std::find(seen.begin(), seen.end(), v.channel) == seen.end()) seen.push_back(v.channel);
  }
  std::string out;
  for (const auto& c : seen) out += (out.empty() ? "" : ",") + c;
  return out;
}

}  // namespace

std::string DefaultCatalogKey(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d + ".key";
}

Result<Record> CatalogInit(const std::string& dir, const std::string& key_path) {
  if (::access(IndexPath(dir).c_str(), F_OK) == 0) {
    return Status(StatusCode::kAlreadyExists,
                  IndexPath(dir) + " exists: " + dir + " is a catalogue already");
  }
  if (Status s = MakeDirs(dir + "/bundles", 0755); !s.ok()) return s;
  ::chmod(dir.c_str(), 0755);
  bool made = false;
  app::SecretKey key;
  if (::access(key_path.c_str(), F_OK) == 0) {
    auto k = LoadKey(key_path);
    if (!k.ok()) return k.status();
    key = *k;
  } else {
    auto k = app::GenerateKey();
    if (!k.ok()) return k.status();
    key = *k;
    if (Status s = WriteFileAtomic(key_path, app::FormatSecretKey(key), 0600); !s.ok()) return s;
    made = true;
  }
  const std::string pub = dir + "/" + app::kCatalogPublicKeyFile;
  if (Status s = WriteFileAtomic(pub, app::FormatPublicKey(key.pub)); !s.ok()) return s;
  CatalogIndex index;
  if (Status s = Publish(dir, key, &index); !s.ok()) return s;
  const std::string id = app::KeyIdHex(key.id);
  return Record{{{"type", "catalog"},
                 {"dir", dir},
                 {"key_id", id},
                 {"secret_key", key_path},
                 {"key_made", made},
                 {"public_key", pub},
                 {"index_sequence", index.sequence}},
                fmt::format("catalogue {} made, signed with key {} ({}{}); devices trust it "
                            "with apps.catalogs: [{{url: ..., key: {}}}]",
                            dir, id, key_path, made ? ", new, 0600" : "", pub)};
}

Result<Record> CatalogAdd(const CatalogAddSpec& spec) {
  if (std::string e = app::ChannelError(spec.channel); !e.empty()) {
    return Status::Invalid("--channel '" + spec.channel + "' " + e);
  }
  auto key = LoadKey(spec.key_path);
  if (!key.ok()) return key.status();
  auto lock = LockCatalog(spec.dir);
  if (!lock.ok()) return lock.status();
  auto index = ReadIndex(spec.dir, key->pub);
  if (!index.ok()) return index.status();
  // Everything below checks the copy that will be published.
  auto staged = StagedBundle::Copy(spec.dir, spec.bundle);
  if (!staged.ok()) return staged.status();
  StagedBundle& bundle = **staged;
  auto head = app::ReadHead(bundle.path());
  if (!head.ok()) return Status(head.status().code(), spec.bundle + ": " + head.status().message());
  const app::AppSpec& a = head->manifest.app;
  app::CatalogApp entry;
  if (auto it = index->apps.find(a.name); it != index->apps.end()) entry = it->second;
  for (const auto& path : spec.publishers) {
    auto text = ReadFileToString(path, 4096);
    if (!text.ok()) return text.status();
    auto k = app::ParsePublicKey(*text, path);
    if (!k.ok()) return k.status();
    entry.publishers[app::KeyIdHex(k->id)] = app::PublicKeyLine(*k);
  }
  if (entry.publishers.empty()) {
    return Status::Invalid(a.name +
                           " is new to the catalogue: --publisher KEY.pub names the key allowed "
                           "to sign it");
  }
  std::vector<app::PublicKey> keys;
  for (const auto& [id, line] : entry.publishers) {
    auto k = app::ParsePublicKey(line, "publisher " + id);
    if (!k.ok()) return k.status();
    keys.push_back(*k);
  }
  auto signers = app::CheckSignatures(*head, keys);
  if (!signers.ok()) {
    return Status(StatusCode::kPermissionDenied, spec.bundle + ": " + signers.status().message() +
                                                     " (the keys allowed for " + a.name +
                                                     "; --publisher KEY.pub adds one)");
  }
  // The payload is checked too: the catalogue offers only bundles that install.
  if (Status s = app::VerifyPayload(bundle.path(), head->manifest); !s.ok()) {
    return Status(s.code(), spec.bundle + ": " + s.message());
  }
  const std::string sha = bundle.sha256();
  const uint64_t size = bundle.size();
  std::string what = "added";
  auto same = std::find_if(entry.versions.begin(), entry.versions.end(),
                           [&](const app::CatalogVersion& v) { return v.version == a.version; });
  if (same != entry.versions.end()) {
    if (same->sha256 != sha) {
      return Status(StatusCode::kAlreadyExists,
                    fmt::format("{} {} is in the catalogue already with another bundle "
                                "(sha256 {}…); a new build needs a new version and sequence",
                                a.name, a.version, same->sha256.substr(0, 12)));
    }
    if (same->channel == spec.channel && !(spec.min && entry.min_sequence != a.sequence)) {
      return Record{{{"type", "catalog_version"},
                     {"name", a.name},
                     {"version", a.version},
                     {"sequence", a.sequence},
                     {"channel", same->channel},
                     {"sha256", sha},
                     {"changed", false},
                     {"index_sequence", index->sequence}},
                    fmt::format("{} {} is in the catalogue already on {}: nothing to do", a.name,
                                a.version, same->channel)};
    }
    what = same->channel == spec.channel ? "kept" : "moved from " + same->channel + " to";
    same->channel = spec.channel;
  } else {
    for (const auto& v : entry.versions) {
      if (v.sequence == a.sequence) {
        return Status(StatusCode::kAlreadyExists,
                      fmt::format("sequence {} of {} is taken by version {} in the catalogue",
                                  a.sequence, a.name, v.version));
      }
    }
    app::CatalogVersion v{a.version, a.sequence,   sha,
                          size,      spec.channel, static_cast<int64_t>(std::time(nullptr))};
    entry.versions.push_back(v);
    std::sort(entry.versions.begin(), entry.versions.end(),
              [](const auto& x, const auto& y) { return x.sequence < y.sequence; });
  }
  if (spec.min) entry.min_sequence = a.sequence;
  index->apps[a.name] = entry;
  if (Status s = bundle.Keep(); !s.ok()) return s;
  if (Status s = Publish(spec.dir, *key, &*index); !s.ok()) return s;
  return Record{{{"type", "catalog_version"},
                 {"name", a.name},
                 {"version", a.version},
                 {"sequence", a.sequence},
                 {"channel", spec.channel},
                 {"sha256", sha},
                 {"size", size},
                 {"signers", *signers},
                 {"min_sequence", entry.min_sequence},
                 {"changed", true},
                 {"index_sequence", index->sequence}},
                fmt::format("{} {} {} channel {} (sequence {}, {} bytes, sha256 {}…); index "
                            "sequence {}",
                            a.name, a.version, what, spec.channel, a.sequence, size,
                            sha.substr(0, 12), index->sequence)};
}

Result<CatalogIndex> LoadCatalog(const std::string& dir) {
  const std::string pub_path = dir + "/" + app::kCatalogPublicKeyFile;
  auto text = ReadFileToString(pub_path, 4096);
  if (!text.ok()) return text.status();
  auto pub = app::ParsePublicKey(*text, pub_path);
  if (!pub.ok()) return pub.status();
  return ReadIndex(dir, *pub);
}

std::vector<Record> CatalogRecords(const CatalogIndex& index, const std::string& name) {
  std::vector<Record> out;
  for (const auto& [app_name, a] : index.apps) {
    if (!name.empty() && app_name != name) continue;
    if (name.empty()) {
      const std::string newest = a.versions.empty() ? "" : a.versions.back().version;
      nlohmann::json keys = nlohmann::json::array();
      for (const auto& [id, line] : a.publishers) keys.push_back(id);
      out.push_back({{{"type", "catalog_app"},
                      {"name", app_name},
                      {"versions", a.versions.size()},
                      {"newest", newest},
                      {"channels", Channels(a)},
                      {"min_sequence", a.min_sequence},
                      {"publishers", keys}},
                     fmt::format("{:<20} {:>3} versions  newest {:<12} channels {}", app_name,
                                 a.versions.size(), newest, Channels(a))});
      continue;
    }
    for (const auto& v : a.versions) {
      const bool offered = v.sequence >= a.min_sequence;
      out.push_back(
          {{{"type", "catalog_version"},
            {"name", app_name},
            {"version", v.version},
            {"sequence", v.sequence},
            {"channel", v.channel},
            {"sha256", v.sha256},
            {"size", v.size},
            {"added_unix", v.added_unix},
            {"offered", offered}},
           fmt::format("{} {:<12} sequence {:<4} {:<8} {:>10} bytes  sha256 {}…{}", app_name,
                       v.version, v.sequence, v.channel, v.size, v.sha256.substr(0, 12),
                       offered ? "" : "  (below the minimum: not offered)")});
    }
  }
  return out;
}

}  // namespace herd::control
