#include "agent/apps/partial_upload.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "common/file.h"

namespace herd::agent {
namespace {

Status Errno(const std::string& what) {
  return Status::Internal(what + ": " + std::strerror(errno));
}

}  // namespace

uint64_t PartialBytes(const std::string& part) {
  struct stat st {};
  if (::lstat(part.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  return static_cast<uint64_t>(st.st_size);
}

Result<std::unique_ptr<PartialUpload>> PartialUpload::Open(const std::string& part,
                                                           const std::string& dest, uint64_t size,
                                                           const std::string& sha256,
                                                           uint64_t offset) {
  if (offset > size) {
    return Status::Invalid(
        fmt::format("offset {} is not inside the bundle's {} bytes", offset, size));
  }
  std::unique_ptr<PartialUpload> u(new PartialUpload());
  u->fd_ = ::open(part.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (u->fd_ < 0) return Errno("cannot open " + part);
  u->part_ = part;  // from here on the destructor removes it while empty
  struct stat st {};
  if (::fstat(u->fd_, &st) != 0) return Errno("cannot stat " + part);
  if (!S_ISREG(st.st_mode)) return Status::Internal(part + " is not a regular file");
  const uint64_t held = static_cast<uint64_t>(st.st_size);
  u->written_ = held;  // a refusal below keeps what is held
  if (offset > held) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("the device holds {} bytes of this bundle, not {}: ask "
                              "InstallStatus again and resume from there",
                              held, offset));
  }
  if (::ftruncate(u->fd_, static_cast<off_t>(offset)) != 0) return Errno("cannot truncate " + part);
  if (::lseek(u->fd_, static_cast<off_t>(offset), SEEK_SET) < 0)
    return Errno("cannot seek " + part);
  u->dest_ = dest;
  u->sha256_ = sha256;
  u->size_ = size;
  u->offset_ = u->written_ = offset;
  return u;
}

PartialUpload::~PartialUpload() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !part_.empty() && written_ == 0) ::unlink(part_.c_str());
}

Status PartialUpload::Write(const std::string& chunk) {
  if (written_ + chunk.size() > size_) {
    return Status::Invalid("more data than the announced " + std::to_string(size_) + " bytes");
  }
  size_t off = 0;
  while (off < chunk.size()) {
    const ssize_t n = ::write(fd_, chunk.data() + off, chunk.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Status(StatusCode::kResourceExhausted,
                    fmt::format("cannot write {}: {}", part_, std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
    written_ += static_cast<uint64_t>(n);
  }
  if (offset_ == 0) hash_.Update(chunk);
  return Status::Ok();
}

Result<std::string> PartialUpload::Digest() {
  if (offset_ == 0) return hash_.HexDigest();
  // Resumed: the bytes before offset_ came from another upload (or another
  // herdd), so the whole file is read again.
  Sha256 whole;
  std::vector<char> buf(1 << 20);
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd_, buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot read " + part_);
    if (n == 0) break;
    whole.Update(buf.data(), static_cast<size_t>(n));
    at += n;
  }
  return whole.HexDigest();
}

Status PartialUpload::Commit() {
  if (written_ != size_) {
    return Status::Invalid(
        fmt::format("received {} of {} bytes; the device keeps them, and the "
                    "next install of this bundle resumes there",
                    written_, size_));
  }
  auto got = Digest();
  if (!got.ok()) return got.status();
  if (*got != sha256_) {
    ::unlink(part_.c_str());
    part_.clear();
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("checksum mismatch (got {}{}); the partial is discarded, sent again "
                              "the bundle starts afresh",
                              *got, offset_ ? fmt::format(", resumed at byte {}", offset_) : ""));
  }
  if (::fsync(fd_) != 0) return Errno("cannot fsync " + part_);
  if (::rename(part_.c_str(), dest_.c_str()) != 0) return Errno("cannot rename " + part_);
  committed_ = true;
  const int dfd = ::open(ParentDir(dest_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

int TrimPartials(const std::string& bundles_dir, size_t keep, std::chrono::seconds max_age,
                 UploadClaims* claims) {
  DIR* d = ::opendir(bundles_dir.c_str());
  if (!d) return 0;
  std::vector<std::pair<int64_t, std::string>> parts;  // mtime, path
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() <= 5 || n.compare(n.size() - 5, 5, ".part") != 0) continue;
    if (claims && claims->Held(n.substr(0, n.size() - 5))) continue;  // being written
    struct stat st {};
    const std::string path = bundles_dir + "/" + n;
    if (::lstat(path.c_str(), &st) == 0) parts.emplace_back(st.st_mtime, path);
  }
  ::closedir(d);
  std::sort(parts.rbegin(), parts.rend());  // newest first
  const int64_t oldest = static_cast<int64_t>(::time(nullptr)) - max_age.count();
  int removed = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    if ((i >= keep || parts[i].first < oldest) && ::unlink(parts[i].second.c_str()) == 0) {
      ++removed;
    }
  }
  return removed;
}

bool UploadClaims::Claim(const std::string& sha256) {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.insert(sha256).second;
}

bool UploadClaims::Held(const std::string& sha256) {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.count(sha256) > 0;
}

void UploadClaims::Release(const std::string& sha256) {
  std::lock_guard<std::mutex> lock(mu_);
  held_.erase(sha256);
}

UploadClaim UploadClaim::Take(UploadClaims& claims, std::string sha256) {
  UploadClaim c;
  if (claims.Claim(sha256)) {
    c.claims_ = &claims;
    c.sha256_ = std::move(sha256);
  }
  return c;
}

UploadClaim& UploadClaim::operator=(UploadClaim&& o) noexcept {
  if (this != &o) {
    Reset();
    claims_ = std::exchange(o.claims_, nullptr);
    sha256_ = std::move(o.sha256_);
  }
  return *this;
}

void UploadClaim::Reset() {
  if (claims_) claims_->Release(sha256_);
  claims_ = nullptr;
}

}  // namespace herd::agent
