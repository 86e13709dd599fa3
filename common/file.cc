#include "common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace herd {

Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound("cannot read " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::Invalid("cannot read " + path + ": it is a directory");
  }
  // Read in chunks up to the cap: a device or FIFO (-i /dev/zero) has no size.
  constexpr size_t kChunk = 64 * 1024;
  std::string out;
  if (S_ISREG(st.st_mode) && st.st_size > 0) {  // one allocation for a regular file
    out.reserve(std::min<size_t>(static_cast<size_t>(st.st_size), max_bytes) + kChunk);
  }
  size_t used = 0;
  for (;;) {
    if (used > max_bytes) {
      ::close(fd);
      return Status::Invalid("cannot read " + path + ": larger than " +
                             std::to_string(max_bytes >> 20) + " MiB");
    }
    out.resize(used + kChunk);
    const ssize_t n = ::read(fd, out.data() + used, kChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string msg = std::strerror(errno);
      ::close(fd);
      return Status::NotFound("cannot read " + path + ": " + msg);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(used);
  return out;
}

Status WriteFileAtomic(const std::string& path, const std::string& content, unsigned mode) {
  const std::string dir = ParentDir(path);
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0)
    return Status::Internal("cannot create a file in " + dir + ": " + std::strerror(errno));
  auto fail = [&](const std::string& what) {
    const std::string msg = what + " " + tmp + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::Internal("cannot " + msg);
  };
  if (::fchmod(fd, mode) != 0) return fail("chmod");
  for (size_t off = 0; off < content.size();) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write");
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string msg = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Status::Internal("cannot replace " + path + ": " + msg);
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

std::string UserConfigPath(const std::string& explicit_path, const char* env_var,
                           const std::string& leaf) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* env = std::getenv(env_var); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/herd/" + leaf;
  }
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.config/herd/" + leaf;
}

std::string ParentDir(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

Status MakeDirs(const std::string& dir, unsigned mode) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      const std::string part = dir.substr(0, i);
      if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) {
        return Status::Internal("cannot create " + part + ": " + std::strerror(errno));
      }
    }
  }
  return Status::Ok();
}

}  // namespace herd
