#include "common/app/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>

#include "common/file.h"
#include "common/hash.h"
#include "common/text.h"

namespace herd::app {
namespace {

constexpr const char* kMarker = "herd-app-bundle v1\n";
constexpr const char* kEntries[] = {"herd-bundle", "manifest.json", "signatures",
                                    "payload.tar.zst"};
constexpr size_t kMaxManifest = 16 << 20;
constexpr size_t kMaxSignatures = 64 << 10;

struct ReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
using Reader = std::unique_ptr<archive, ReadFree>;
using Writer = std::unique_ptr<archive, WriteFree>;

Status ArchiveError(archive* a, const std::string& what) {
  const char* e = archive_error_string(a);
  return Status::Invalid(what + ": " + (e ? e : "archive error"));
}

// Adds a regular-file header for `name` of `size` bytes, mode, owned by 0.
Status Header(archive* w, const std::string& name, uint64_t size, uint32_t mode) {
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, mode);
  archive_entry_set_size(e, static_cast<la_int64_t>(size));
  archive_entry_set_mtime(e, 0, 0);
  const int rc = archive_write_header(w, e);
  archive_entry_free(e);
  return rc == ARCHIVE_OK ? Status::Ok() : ArchiveError(w, "writing " + name);
}

Status Data(archive* w, std::string_view data, const std::string& name) {
  while (!data.empty()) {
    const la_ssize_t n = archive_write_data(w, data.data(), data.size());
    if (n <= 0) return ArchiveError(w, "writing " + name);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Fills `buf` with the payload's next bytes: how many (0 at its end).
using PayloadReader = std::function<Result<size_t>(char* buf, size_t size)>;

// Writes the outer archive (through a temporary renamed over `out`): marker,
// manifest, signatures, then `payload_size` bytes from `read`.
Status WriteOuter(const std::string& out, const std::string& manifest,
                  const std::string& signatures, uint64_t payload_size, const PayloadReader& read) {
  const std::string tmp = out + ".tmp";
  Status s = [&]() -> Status {
    Writer w(archive_write_new());
    archive_write_set_format_pax_restricted(w.get());
    archive_write_set_bytes_in_last_block(w.get(), 1);
    if (archive_write_open_filename(w.get(), tmp.c_str()) != ARCHIVE_OK) {
      return ArchiveError(w.get(), "cannot write " + tmp);
    }
    const std::string marker = kMarker;
    for (const auto& [name, body] :
         {std::pair<const char*, const std::string*>{kEntries[0], &marker},
          {kEntries[1], &manifest},
          {kEntries[2], &signatures}}) {
      if (Status st = Header(w.get(), name, body->size(), 0644); !st.ok()) return st;
      if (Status st = Data(w.get(), *body, name); !st.ok()) return st;
    }
    if (Status st = Header(w.get(), kEntries[3], payload_size, 0644); !st.ok()) return st;
    std::string buf(1 << 20, '\0');
    uint64_t copied = 0;
    for (;;) {
      auto n = read(buf.data(), buf.size());
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      if (Status st = Data(w.get(), std::string_view(buf.data(), *n), kEntries[3]); !st.ok()) {
        return st;
      }
      copied += *n;
    }
    if (copied != payload_size) return Status::Internal("the payload changed while it was copied");
    if (archive_write_close(w.get()) != ARCHIVE_OK) return ArchiveError(w.get(), "closing " + tmp);
    return Status::Ok();
  }();
  if (s.ok() && std::rename(tmp.c_str(), out.c_str()) != 0) {
    s = Status::Internal("cannot rename " + tmp + " to " + out);
  }
  if (!s.ok()) std::remove(tmp.c_str());
  return s;
}

// Opens the outer archive and checks the name of each entry as it comes.
class Outer {
 public:
  Status Open(const std::string& path) {
    path_ = path;
    a_.reset(archive_read_new());
    archive_read_support_format_tar(a_.get());
    if (archive_read_open_filename(a_.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) {
      return ArchiveError(a_.get(), path + ": not a herd bundle");
    }
    return Status::Ok();
  }
  // The next entry, which must be `kEntries[index]`; its size.
  Result<uint64_t> Next(size_t index) {
    archive_entry* e = nullptr;
    if (archive_read_next_header(a_.get(), &e) != ARCHIVE_OK) {
      return Status::Invalid(path_ + ": not a herd bundle (entry " + std::to_string(index + 1) +
                             " missing: " + kEntries[index] + ")");
    }
    const char* name = archive_entry_pathname(e);
    if (!name || std::string(name) != kEntries[index] || archive_entry_filetype(e) != AE_IFREG) {
      return Status::Invalid(path_ + ": entry " + std::to_string(index + 1) + " is '" +
                             Excerpt(name ? name : "") + "', expected " + kEntries[index]);
    }
    return static_cast<uint64_t>(archive_entry_size(e));
  }
  Result<std::string> ReadAll(uint64_t size, size_t limit, const char* what) {
    if (size > limit) return Status::Invalid(path_ + ": " + what + " larger than allowed");
    std::string out(size, '\0');
    const la_ssize_t n = archive_read_data(a_.get(), out.data(), out.size());
    if (n < 0 || static_cast<uint64_t>(n) != size) return ArchiveError(a_.get(), path_);
    return out;
  }
  archive* get() { return a_.get(); }

 private:
  std::string path_;
  Reader a_;
};

}  // namespace

std::vector<std::string> SplitSignatures(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  int lines = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(at, nl - at);
    at = nl + 1;
    if (line.empty() && lines == 0) continue;
    current += line + "\n";
    if (++lines == 4) {
      out.push_back(std::move(current));
      current.clear();
      lines = 0;
    }
  }
  if (!current.empty()) out.push_back(current);  // malformed: verification says so
  return out;
}

Result<BundleHead> ReadHead(const std::string& path) {
  Outer o;
  if (Status s = o.Open(path); !s.ok()) return s;
  BundleHead h;
  auto marker_size = o.Next(0);
  if (!marker_size.ok()) return marker_size.status();
  auto marker = o.ReadAll(*marker_size, 64, "format marker");
  if (!marker.ok()) return marker.status();
  if (*marker != kMarker) return Status::Invalid(path + ": unknown bundle format");
  auto msize = o.Next(1);
  if (!msize.ok()) return msize.status();
  auto manifest = o.ReadAll(*msize, kMaxManifest, "manifest");
  if (!manifest.ok()) return manifest.status();
  auto parsed = ParseManifest(*manifest, path);
  if (!parsed.ok()) return parsed.status();
  auto ssize = o.Next(2);
  if (!ssize.ok()) return ssize.status();
  auto sigs = o.ReadAll(*ssize, kMaxSignatures, "signatures");
  if (!sigs.ok()) return sigs.status();
  h.manifest_text = std::move(*manifest);
  h.manifest = std::move(*parsed);
  h.signatures = SplitSignatures(*sigs);
  return h;
}

namespace {

// The inner archive reads its bytes from the outer's payload entry, hashing
// them on the way (whole and per chunk).
struct PayloadSource {
  archive* outer = nullptr;
  const Manifest* manifest = nullptr;
  Sha256 whole;
  std::unique_ptr<Sha256> chunk = std::make_unique<Sha256>();
  uint64_t in_chunk = 0, total = 0;
  std::vector<std::string> chunks;
  char buf[1 << 16];

  static la_ssize_t Read(archive*, void* self, const void** out) {
    auto* p = static_cast<PayloadSource*>(self);
    const la_ssize_t n = archive_read_data(p->outer, p->buf, sizeof p->buf);
    if (n <= 0) return n;
    *out = p->buf;
    std::string_view data(p->buf, static_cast<size_t>(n));
    p->whole.Update(data);
    p->total += data.size();
    while (!data.empty()) {
      const size_t take = static_cast<size_t>(
          std::min<uint64_t>(data.size(), p->manifest->chunk_size - p->in_chunk));
      p->chunk->Update(data.substr(0, take));
      p->in_chunk += take;
      data.remove_prefix(take);
      if (p->in_chunk == p->manifest->chunk_size) p->EndChunk();
    }
    return n;
  }
  void EndChunk() {
    chunks.push_back(chunk->HexDigest());
    chunk = std::make_unique<Sha256>();
    in_chunk = 0;
  }
};

}  // namespace

Status VerifyPayload(const std::string& path, const Manifest& m, const PayloadLimits& limits,
                     const FileSink& on_file) {
  Outer o;
  if (Status s = o.Open(path); !s.ok()) return s;
  for (size_t i = 0; i < 3; ++i) {
    if (auto n = o.Next(i); !n.ok()) return n.status();
  }
  auto size = o.Next(3);
  if (!size.ok()) return size.status();
  if (*size != m.payload_size) {
    return Status(StatusCode::kFailedPrecondition, path + ": payload is " + std::to_string(*size) +
                                                       " bytes, the manifest says " +
                                                       std::to_string(m.payload_size));
  }
  std::map<std::string, const FileEntry*> expected;
  for (const auto& f : m.files) expected[f.path] = &f;
  PayloadSource src;
  src.outer = o.get();
  src.manifest = &m;
  Reader inner(archive_read_new());
  archive_read_support_format_tar(inner.get());
  archive_read_support_filter_zstd(inner.get());
  if (archive_read_open(inner.get(), &src, nullptr, &PayloadSource::Read, nullptr) != ARCHIVE_OK) {
    return ArchiveError(inner.get(), path + ": payload");
  }
  uint64_t entries = 0, expanded = 0;
  std::string buf(1 << 16, '\0');
  for (;;) {
    archive_entry* e = nullptr;
    const int rc = archive_read_next_header(inner.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK) return ArchiveError(inner.get(), path + ": payload");
    if (++entries > limits.max_entries) {
      return Status(
          StatusCode::kFailedPrecondition,
          path + ": payload holds more than " + std::to_string(limits.max_entries) + " entries");
    }
    const char* raw = archive_entry_pathname(e);
    const std::string name = raw ? raw : "";
    const auto type = archive_entry_filetype(e);
    const std::string shown = "'" + Excerpt(name) + "'";
    if (!IsCanonicalPath(name))
      return Status::Invalid(path + ": payload entry " + shown +
                             " is not a canonical relative path");
    if (archive_entry_hardlink(e))
      return Status::Invalid(path + ": payload entry " + shown + " is a hard link");
    if (type == AE_IFDIR) continue;  // folders are made as files need them
    if (type != AE_IFREG)
      return Status::Invalid(path + ": payload entry " + shown +
                             " is not a regular file (links, devices and FIFOs are refused)");
    if ((archive_entry_perm(e) & 07000) != 0)
      return Status::Invalid(path + ": payload entry " + shown +
                             " has setuid, setgid or sticky bits");
    auto it = expected.find(name);
    if (it == expected.end())
      return Status::Invalid(path + ": payload entry " + shown +
                             " is not in the manifest, or repeats");
    const FileEntry& f = *it->second;
    expected.erase(it);
    if (static_cast<uint64_t>(archive_entry_size(e)) != f.size ||
        (archive_entry_perm(e) & 0777) != f.mode) {
      return Status::Invalid(path + ": payload entry " + shown +
                             " differs from the manifest (size or mode)");
    }
    expanded += f.size;
    if (expanded > limits.max_bytes) {
      return Status(
          StatusCode::kFailedPrecondition,
          path + ": payload expands beyond " + std::to_string(limits.max_bytes) + " bytes");
    }
    Sha256 h;
    uint64_t got = 0;
    for (;;) {
      const la_ssize_t n = archive_read_data(inner.get(), buf.data(), buf.size());
      if (n < 0) return ArchiveError(inner.get(), path + ": payload entry " + shown);
      if (n == 0) break;
      got += static_cast<uint64_t>(n);
      if (got > f.size)
        return Status::Invalid(path + ": payload entry " + shown + " is longer than declared");
      h.Update(buf.data(), static_cast<size_t>(n));
      if (on_file) {
        if (Status s = on_file(f, std::string_view(buf.data(), static_cast<size_t>(n)), false);
            !s.ok())
          return s;
      }
    }
    if (got != f.size || h.HexDigest() != f.sha256) {
      return Status(
          StatusCode::kFailedPrecondition,
          path + ": payload entry " + shown + " does not match its SHA-256 in the manifest");
    }
    if (on_file) {
      if (Status s = on_file(f, {}, true); !s.ok()) return s;
    }
  }
  // The rest of the payload (tar padding) is hashed too.
  const void* rest = nullptr;
  while (PayloadSource::Read(nullptr, &src, &rest) > 0) {
  }
  if (src.in_chunk > 0) src.EndChunk();
  if (src.total != m.payload_size || src.whole.HexDigest() != m.payload_sha256) {
    return Status(StatusCode::kFailedPrecondition,
                  path + ": payload does not match the manifest's digest");
  }
  if (src.chunks != m.chunks) {
    return Status(StatusCode::kFailedPrecondition,
                  path + ": payload chunk digests do not match the manifest");
  }
  if (!expected.empty()) {
    return Status::Invalid(path + ": payload lacks " + expected.begin()->first +
                           " (named in the manifest)");
  }
  archive_entry* extra = nullptr;
  if (archive_read_next_header(o.get(), &extra) == ARCHIVE_OK) {
    return Status::Invalid(path + ": an entry after the payload");
  }
  return Status::Ok();
}

Status WriteSignatures(const std::string& path, const std::vector<std::string>& signatures) {
  auto head = ReadHead(path);
  if (!head.ok()) return head.status();
  std::string all;
  for (const auto& sig : signatures) all += sig;
  if (all.size() > kMaxSignatures) return Status::Invalid("too many signatures");
  Outer o;
  if (Status s = o.Open(path); !s.ok()) return s;
  for (size_t i = 0; i < 3; ++i) {
    if (auto n = o.Next(i); !n.ok()) return n.status();
  }
  auto size = o.Next(3);
  if (!size.ok()) return size.status();
  return WriteOuter(path, head->manifest_text, all, *size,
                    [&](char* buf, size_t n) -> Result<size_t> {
                      const la_ssize_t got = archive_read_data(o.get(), buf, n);
                      if (got < 0) return ArchiveError(o.get(), path);
                      return static_cast<size_t>(got);
                    });
}

Result<Manifest> Pack(const std::string& dir, const std::string& out) {
  namespace fs = std::filesystem;
  const std::string yaml_path = dir + "/app.yaml";
  std::ifstream yin(yaml_path, std::ios::binary);
  if (!yin) return Status::NotFound("cannot read " + yaml_path);
  std::string yaml((std::istreambuf_iterator<char>(yin)), std::istreambuf_iterator<char>());
  auto spec = ParseAppYaml(yaml, yaml_path);
  if (!spec.ok()) return spec.status();
  Manifest m;
  m.app = std::move(*spec);
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto st = it->symlink_status(ec);
    const std::string rel = fs::relative(it->path(), dir, ec).generic_string();
    if (fs::is_directory(st)) continue;
    if (!fs::is_regular_file(st)) {
      return Status::Invalid(it->path().string() +
                             ": only regular files and folders go into a bundle (no links, "
                             "devices, FIFOs or sockets)");
    }
    if (!IsCanonicalPath(rel))
      return Status::Invalid(it->path().string() + ": name not allowed in a bundle");
    names.push_back(rel);
  }
  if (ec) return Status::Internal("cannot read " + dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  const std::string payload = out + ".payload";
  {
    Writer w(archive_write_new());
    archive_write_set_format_pax_restricted(w.get());
    archive_write_add_filter_zstd(w.get());
    if (archive_write_open_filename(w.get(), payload.c_str()) != ARCHIVE_OK) {
      return ArchiveError(w.get(), "cannot write " + payload);
    }
    std::string buf(1 << 20, '\0');
    for (const auto& name : names) {
      const std::string full = dir + "/" + name;
      struct stat st {};
      if (::stat(full.c_str(), &st) != 0) return Status::NotFound("cannot read " + full);
      if ((st.st_mode & 07000) != 0) {
        return Status::Invalid(full +
                               ": setuid, setgid or sticky bits are not allowed in a bundle");
      }
      FileEntry f{name, static_cast<uint32_t>(st.st_mode & 0777), static_cast<uint64_t>(st.st_size),
                  ""};
      if (Status s = Header(w.get(), name, f.size, f.mode); !s.ok()) return s;
      std::ifstream in(full, std::ios::binary);
      Sha256 h;
      uint64_t total = 0;
      while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto n = static_cast<size_t>(in.gcount());
        if (n == 0) break;
        h.Update(buf.data(), n);
        total += n;
        if (Status s = Data(w.get(), std::string_view(buf.data(), n), name); !s.ok()) return s;
      }
      if (total != f.size) return Status::Internal(full + " changed while it was packed");
      f.sha256 = h.HexDigest();
      m.files.push_back(std::move(f));
    }
    if (archive_write_close(w.get()) != ARCHIVE_OK)
      return ArchiveError(w.get(), "closing " + payload);
  }
  // The payload's digests, whole and per chunk.
  {
    std::ifstream in(payload, std::ios::binary);
    Sha256 whole;
    std::string buf(m.chunk_size, '\0');
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const auto n = static_cast<size_t>(in.gcount());
      if (n == 0) break;
      whole.Update(buf.data(), n);
      m.chunks.push_back(Sha256Hex(std::string_view(buf.data(), n)));
      m.payload_size += n;
    }
    m.payload_sha256 = whole.HexDigest();
  }
  std::ifstream pin(payload, std::ios::binary);
  Status s = WriteOuter(out, CanonicalJson(m), "", m.payload_size,
                        [&](char* buf, size_t n) -> Result<size_t> {
                          pin.read(buf, static_cast<std::streamsize>(n));
                          return static_cast<size_t>(pin.gcount());
                        });
  std::remove(payload.c_str());
  if (!s.ok()) return s;
  return m;
}

}  // namespace herd::app
