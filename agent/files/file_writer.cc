#include "agent/files/file_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/text.h"

namespace herd::agent {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

Result<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Open(const std::string& path,
                                                                 uint32_t mode, uint64_t size,
                                                                 const std::string& sha256,
                                                                 const std::string& notes_dir) {
  FileOptions o;
  o.mode = mode;
  o.set_mode = true;
  o.allow_setid = true;
  return Open(path, o, size, sha256, notes_dir);
}

Result<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Open(const std::string& path,
                                                                 const FileOptions& options,
                                                                 uint64_t size,
                                                                 const std::string& sha256,
                                                                 const std::string& notes_dir) {
  if (Status s = CheckAbsolutePath(path, "destination"); !s.ok()) return s;
  if (path.back() == '/') return Status::Invalid("destination " + path + " is a directory");
  if (options.mode > 07777) return Status::Invalid("mode must be permission bits (<= 07777)");
  std::string digest = sha256;
  for (char& c : digest) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (digest.size() != 64 || digest.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Status::Invalid("sha256 must be 64 hex digits, got '" + Excerpt(sha256) + "'");
  }
  std::string dir = path.substr(0, path.rfind('/'));
  if (dir.empty()) dir = "/";
  std::unique_ptr<AtomicFileWriter> w(new AtomicFileWriter());
  w->account_ = options.account;
  {
    std::optional<ScopedFsIdentity> as;
    if (options.account) as.emplace(*options.account);
    if (Status s = w->Create(path, dir, options); !s.ok()) return s;
  }
  w->size_ = size;
  w->sha256_ = digest;
  if (!notes_dir.empty()) {
    // Named after the temporary's inode: unique while it exists. Not synced:
    // after a power cut the temporary may be gone as well.
    struct stat tst {};
    ::fstat(w->fd_, &tst);
    w->note_ = notes_dir + "/" + std::to_string(tst.st_dev) + "-" + std::to_string(tst.st_ino);
    const int nfd = ::open(w->note_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (nfd >= 0) {
      (void)!::write(nfd, w->tmp_.data(), w->tmp_.size());
      ::close(nfd);
    } else {
      w->note_.clear();
    }
  }
  return w;
}

Status AtomicFileWriter::Create(const std::string& path, const std::string& dir,
                                const FileOptions& o) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "directory " + dir + " does not exist: " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status(StatusCode::kFailedPrecondition, dir + " is not a directory");
  }
  const bool exists = ::lstat(path.c_str(), &st) == 0;
  if (exists && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) {
      return Status(StatusCode::kFailedPrecondition,
                    "destination " + path + " is a directory; give the full file path");
    }
    // Replacing a device, FIFO, socket or symlink by a regular file is never
    // what a copy means: /dev/null would become a file.
    const char* kind = S_ISLNK(st.st_mode)    ? "a symbolic link"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                                              : "a socket";
    return Status(StatusCode::kFailedPrecondition, "destination " + path + " is " + kind +
                                                       "; herd copy only replaces regular files");
  }
  // What it replaces keeps its mode, owner and group unless told otherwise.
  const uint32_t mode = exists && !o.set_mode ? (st.st_mode & 07777) : o.mode;
  if ((mode & 07000) != 0 && !o.allow_setid) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("{} would be mode {:04o} (setuid, setgid or sticky): allow it "
                              "explicitly (herd copy --allow-setid), or give --mode",
                              path, mode));
  }
  const uid_t uid = o.uid ? *o.uid : exists ? st.st_uid : static_cast<uid_t>(-1);
  const gid_t gid = o.gid ? *o.gid : exists ? st.st_gid : static_cast<gid_t>(-1);
  path_ = path;
  std::string tmpl = dir + (dir == "/" ? "" : "/") + ".herd-put-XXXXXX";
  fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd_ < 0) return Status(StatusCode::kFailedPrecondition, Errno("create in " + dir));
  tmp_ = tmpl;
  struct stat tst {};
  ::fstat(fd_, &tst);
  if ((uid != static_cast<uid_t>(-1) && uid != tst.st_uid) ||
      (gid != static_cast<gid_t>(-1) && gid != tst.st_gid)) {
    if (::fchown(fd_, uid, gid) != 0) {
      return Status(StatusCode::kFailedPrecondition,
                    fmt::format("cannot give {} owner {} and group {}{}: {}", path, uid, gid,
                                account_ && !account_->is_agent ? " as " + account_->name : "",
                                std::strerror(errno)));
    }
  }
  // After the owner: chown clears setuid and setgid bits.
  if (::fchmod(fd_, mode) != 0) return Status::Internal(Errno("chmod " + tmp_));
  ::fstat(fd_, &tst);
  mode_ = tst.st_mode & 07777;
  uid_ = tst.st_uid;
  gid_ = tst.st_gid;
  return Status::Ok();
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
  if (!note_.empty()) ::unlink(note_.c_str());
}

int RemoveLeftTemporaries(const std::string& notes_dir) {
  DIR* d = ::opendir(notes_dir.c_str());
  if (!d) return 0;
  int removed = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string note = notes_dir + "/" + e->d_name;
    char buf[4097] = {};
    const int fd = ::open(note.c_str(), O_RDONLY | O_CLOEXEC);
    const ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) ::close(fd);
    const std::string tmp(buf, n > 0 ? static_cast<size_t>(n) : 0);
    const std::string leaf = tmp.substr(tmp.rfind('/') + 1);
    struct stat st {};
    if (!tmp.empty() && tmp[0] == '/' && leaf.rfind(".herd-put-", 0) == 0 &&
        ::lstat(tmp.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::unlink(tmp.c_str()) == 0) {
      ++removed;
    }
    ::unlink(note.c_str());
  }
  ::closedir(d);
  return removed;
}

Status AtomicFileWriter::Write(const std::string& chunk) {
  if (written_ + chunk.size() > size_) {
    return Status::Invalid("more data than the announced " + std::to_string(size_) + " bytes");
  }
  size_t off = 0;
  while (off < chunk.size()) {
    ssize_t n = ::write(fd_, chunk.data() + off, chunk.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status(StatusCode::kResourceExhausted, Errno("write " + path_));
    }
    off += n;
  }
  hash_.Update(chunk);
  written_ += chunk.size();
  return Status::Ok();
}

Status AtomicFileWriter::Commit() {
  if (written_ != size_) {
    return Status::Invalid("received " + std::to_string(written_) + " of " + std::to_string(size_) +
                           " bytes; " + path_ + " left unchanged");
  }
  std::string got = hash_.HexDigest();
  if (got != sha256_) {
    return Status(StatusCode::kFailedPrecondition,
                  "checksum mismatch (got " + got + "); " + path_ + " left unchanged");
  }
  if (::fsync(fd_) != 0) return Status::Internal(Errno("fsync " + tmp_));
  ::close(fd_);
  fd_ = -1;
  std::optional<ScopedFsIdentity> as;
  if (account_) as.emplace(*account_);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    return Status(
        errno == EACCES || errno == EPERM ? StatusCode::kPermissionDenied : StatusCode::kInternal,
        Errno("rename " + path_));
  }
  committed_ = true;
  std::string dir = path_.substr(0, path_.rfind('/'));
  int dfd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace herd::agent
