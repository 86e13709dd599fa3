#include "agent/apps/snapshot.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>

#include "common/unique_fd.h"

namespace herd::agent {
namespace {

namespace fs = std::filesystem;

Status Errno(const std::string& what) {
  return Status::Internal(what + ": " + std::strerror(errno));
}

uint64_t TreeBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<uint64_t>(st.st_size);
    }
  }
  return total;
}

// Copies one regular file: a reflink when `*reflink` (cleared at the first
// refusal), else its bytes when `may_copy`.
Status CopyFile(const std::string& from, const std::string& to, const struct stat& st,
                bool* reflink, bool* cloned, bool may_copy) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!in.valid()) return Errno("cannot open " + from);
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out.valid()) return Errno("cannot create " + to);
  if (*reflink && ::ioctl(out.get(), FICLONE, in.get()) != 0) *reflink = false;
  if (*reflink) *cloned = true;
  if (!*reflink) {
    if (!may_copy) return Status(StatusCode::kFailedPrecondition, "no reflink");
    off_t left = st.st_size;
    while (left > 0) {
      const ssize_t n =
          ::copy_file_range(in.get(), nullptr, out.get(), nullptr, static_cast<size_t>(left), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Errno("cannot copy " + from);
      left -= n;
    }
  }
  if (::fchown(out.get(), st.st_uid, st.st_gid) != 0 ||
      ::fchmod(out.get(), st.st_mode & 07777) != 0 || ::fsync(out.get()) != 0) {
    return Errno("cannot finish " + to);
  }
  return Status::Ok();
}

// `*reflink`: files are cloned (cleared at the first refusal); `*cloned`:
// set once one was.
Status CopyTree(const std::string& src, const std::string& dst, bool* reflink, bool* cloned,
                bool may_copy) {
  struct stat top {};
  if (::lstat(src.c_str(), &top) != 0) return Errno("cannot read " + src);
  if (::mkdir(dst.c_str(), 0700) != 0) return Errno("cannot create " + dst);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(src, ec); it != fs::end(it); it.increment(ec)) {
    if (ec) return Status::Internal("cannot read " + src + ": " + ec.message());
    const std::string from = it->path().string();
    const std::string to = dst + from.substr(src.size());
    struct stat st {};
    if (::lstat(from.c_str(), &st) != 0) return Errno("cannot read " + from);
    if (S_ISDIR(st.st_mode)) {
      if (::mkdir(to.c_str(), 0700) != 0 || ::lchown(to.c_str(), st.st_uid, st.st_gid) != 0 ||
          ::chmod(to.c_str(), st.st_mode & 07777) != 0) {
        return Errno("cannot create " + to);
      }
    } else if (S_ISREG(st.st_mode)) {
      if (Status s = CopyFile(from, to, st, reflink, cloned, may_copy); !s.ok()) return s;
    } else if (S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      const ssize_t n = ::readlink(from.c_str(), target, sizeof target - 1);
      if (n < 0 ||
          ::symlink(std::string(target, static_cast<size_t>(n)).c_str(), to.c_str()) != 0 ||
          ::lchown(to.c_str(), st.st_uid, st.st_gid) != 0) {
        return Errno("cannot copy the link " + from);
      }
    }
  }
  if (::chown(dst.c_str(), top.st_uid, top.st_gid) != 0 ||
      ::chmod(dst.c_str(), top.st_mode & 07777) != 0) {
    return Errno("cannot finish " + dst);
  }
  return Status::Ok();
}

void SyncParent(const std::string& path) {
  UniqueFd d(::open(fs::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.valid()) ::fsync(d.get());
}

}  // namespace

void RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) spdlog::warn("apps: cannot remove {}: {}", path, ec.message());
}

Result<std::string> SnapshotTree(const std::string& src, const std::string& dst,
                                 uint64_t max_copy_bytes) {
  const std::string tmp = dst + ".tmp";
  RemoveTree(tmp);
  const bool may_copy = TreeBytes(src) <= max_copy_bytes;
  bool reflink = true, cloned = false;
  Status s = CopyTree(src, tmp, &reflink, &cloned, may_copy);
  if (!s.ok()) {
    RemoveTree(tmp);
    if (s.code() == StatusCode::kFailedPrecondition) {
      return Status(StatusCode::kFailedPrecondition,
                    "the data is larger than apps.max_snapshot_copy and its filesystem cannot "
                    "reflink: activate with --no-snapshot to go on without one");
    }
    return s;
  }
  if (::rename(tmp.c_str(), dst.c_str()) != 0) {
    Status e = Errno("cannot rename " + tmp);
    RemoveTree(tmp);
    return e;
  }
  SyncParent(dst);
  // Empty data is a copy (of nothing): "reflink" says the filesystem cloned.
  return std::string(reflink && cloned ? "reflink" : "copy");
}

Status RestoreTree(const std::string& snapshot, const std::string& data) {
  const std::string fresh = data + ".restore", old = data + ".discard";
  RemoveTree(fresh);
  RemoveTree(old);
  bool reflink = true, cloned = false;
  if (Status s = CopyTree(snapshot, fresh, &reflink, &cloned, true); !s.ok()) {
    RemoveTree(fresh);
    return s;
  }
  if (::rename(data.c_str(), old.c_str()) != 0 && errno != ENOENT) {
    return Errno("cannot move " + data + " aside");
  }
  if (::rename(fresh.c_str(), data.c_str()) != 0) return Errno("cannot restore " + data);
  SyncParent(data);
  RemoveTree(old);
  return Status::Ok();
}

}  // namespace herd::agent
