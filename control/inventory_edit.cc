// Editing the inventory file in place (herd enroll): one host entry added at
// the end of `hosts:`, everything else in the file kept as it was.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <regex>
#include <sstream>

#include "common/file.h"
#include "control/inventory.h"

namespace herd::control {

namespace {

// A YAML double-quoted scalar (JSON escapes are valid YAML escapes).
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string HostEntry(const Host& h, const std::string& indent) {
  std::string e =
      indent + "- name: " + h.name + "\n" + indent + "  address: " + Quoted(h.address) + "\n";
  if (!h.metrics.empty()) e += indent + "  metrics: " + Quoted(h.metrics) + "\n";
  if (!h.labels.empty()) {
    std::string l;
    for (const auto& [k, v] : h.labels) l += (l.empty() ? "" : ", ") + Quoted(k) + ": " + Quoted(v);
    e += indent + "  labels: {" + l + "}\n";
  }
  return e;
}

// Inserts `host` at the end of the block list under a top-level `hosts:`.
Result<std::string> InsertHost(const std::string& text, const Host& host, const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  static const std::regex kHostsKey(R"(^hosts:\s*(\[\s*\])?\s*(#.*)?$)");
  size_t key = lines.size();
  std::smatch m;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (std::regex_match(lines[i], m, kHostsKey)) {
      key = i;
      break;
    }
  }
  if (key == lines.size()) {
    if (text.find("hosts:") != std::string::npos) {
      return Status::Invalid(path + ": 'hosts:' is not a block list herd can append to; add " +
                             host.name + " by hand");
    }
    std::string out = text;
    if (!out.empty() && out.back() != '\n') out += '\n';
    return out + "hosts:\n" + HostEntry(host, "  ");
  }
  if (m[1].matched) lines[key] = "hosts:";  // "hosts: []" becomes a block list
  std::string indent = "  ";
  size_t last = key;  // last line that belongs to the list
  for (size_t i = key + 1; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    const size_t first = l.find_first_not_of(' ');
    if (first == std::string::npos || l[first] == '#') continue;
    if (first == 0 && l[0] != '-') break;  // the next top-level key
    if (last == key && l[first] == '-') indent = l.substr(0, first);
    last = i;
  }
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += lines[i] + "\n";
    if (i == last) out += HostEntry(host, indent);
  }
  return out;
}

}  // namespace

namespace {

// Holds an exclusive lock on the inventory file for one read-modify-write, so
// two `herd enroll` runs at once both land. The lock is on the inode; a
// writer replaces the file by rename, so after locking we check the path
// still names the inode we hold and retry if not.
class InventoryLock {
 public:
  static Result<InventoryLock> Acquire(const std::string& path) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return Status::Internal("cannot open " + path + ": " + std::strerror(errno));
      if (::flock(fd, LOCK_EX) != 0) {
        ::close(fd);
        return Status::Internal("cannot lock " + path + ": " + std::strerror(errno));
      }
      struct stat held {
      }, now{};
      if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
          held.st_dev == now.st_dev) {
        return InventoryLock(fd);
      }
      ::close(fd);  // replaced while we waited: lock the new file
    }
    return Status::Internal("cannot lock " + path + ": it keeps being replaced");
  }
  InventoryLock(InventoryLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  InventoryLock(const InventoryLock&) = delete;
  ~InventoryLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit InventoryLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace

namespace {

Status AddHostLocked(const std::string& path, const Host& host) {
  struct stat st {};
  auto existing = ReadFileToString(path);
  if (!existing.ok()) return existing.status();
  const std::string text = *existing;
  const unsigned mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 0777) : 0644;
  if (text.find_first_not_of(" \n\t") != std::string::npos) {
    auto inv = ParseInventory(text, path);
    if (!inv.ok()) return inv.status();
    if (const Host* h = inv->FindHost(host.name)) {
      if (h->address == host.address) {
        return Status(StatusCode::kAlreadyExists,
                      path + " already lists " + host.name + " at " + host.address);
      }
      return Status(StatusCode::kAlreadyExists,
                    path + " already has a host named " + host.name + " at " + h->address);
    }
  }
  auto edited = InsertHost(text, host, path);
  if (!edited.ok()) return edited.status();
  auto check = ParseInventory(*edited, path);
  if (!check.ok()) {
    return Status::Invalid("adding " + host.name + " to " + path +
                           " would not load (nothing changed): " + check.status().message());
  }
  const Host* added = check->FindHost(host.name);
  if (!added || added->address != host.address) {
    return Status::Internal("adding " + host.name + " to " + path + " failed (nothing changed)");
  }
  return WriteFileAtomic(path, *edited, mode);
}

// The file an inventory edit replaces: `given_path` with symlinks resolved
// (the file a link points to is edited, the link stays). It is replaced by
// rename, so only a regular file, or none yet (*exists false), may be.
Result<std::string> InventoryTarget(const std::string& given_path, bool* exists) {
  std::string path = given_path;
  if (char* real = ::realpath(given_path.c_str(), nullptr)) {
    path = real;
    std::free(real);
  }
  struct stat st {};
  *exists = ::stat(path.c_str(), &st) == 0;
  if (!*exists && errno != ENOENT) {
    return Status::Invalid("inventory " + path + ": " + std::strerror(errno));
  }
  if (*exists && S_ISDIR(st.st_mode)) {
    return Status::Invalid("inventory " + path + " is a directory, not a YAML file");
  }
  if (*exists && !S_ISREG(st.st_mode)) {  // never rename a file over /dev/null
    return Status::Invalid("inventory " + path +
                           " is not a regular file (a device, FIFO or socket); give -i FILE");
  }
  return path;
}

}  // namespace

Status AddHostToInventoryFile(const std::string& given_path, const Host& host) {
  bool existed = false;
  auto target = InventoryTarget(given_path, &existed);
  if (!target.ok()) return target.status();
  const std::string& path = *target;
  if (Status s = MakeDirs(ParentDir(path)); !s.ok()) return s;
  auto lock = InventoryLock::Acquire(path);
  if (!lock.ok()) return lock.status();
  Status s = AddHostLocked(path, host);
  // Locking created an empty file: don't leave it behind when nothing was added.
  struct stat st {};
  if (!s.ok() && !existed && ::stat(path.c_str(), &st) == 0 && st.st_size == 0) {
    ::unlink(path.c_str());
  }
  return s;
}

Status CheckInventoryWritable(const std::string& given_path) {
  if (given_path.empty() || given_path.back() == '/') {
    return Status::Invalid("inventory '" + given_path + "' names a folder, not a YAML file");
  }
  bool exists = false;
  auto target = InventoryTarget(given_path, &exists);
  if (!target.ok()) return target.status();
  const std::string& path = *target;
  // The nearest folder that exists (the rest is made when the host is added).
  std::string dir = path;
  struct stat st {};
  for (;;) {
    dir = ParentDir(dir);
    if (::stat(dir.c_str(), &st) == 0) break;
    if (errno != ENOENT || dir == "/" || dir == ".") {
      return Status::Invalid("inventory " + path + ": folder " + dir + ": " + std::strerror(errno));
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::Invalid("inventory " + path + ": " + dir + " is not a folder");
  }
  // The same name pattern as the temporary that will replace the file.
  const std::string leaf = path.substr(path.rfind('/') + 1);
  std::string probe = dir + (dir == "/" ? "" : "/") + leaf + ".tmp-XXXXXX";
  const int fd = ::mkostemp(probe.data(), O_CLOEXEC);
  if (fd < 0) {
    return Status(StatusCode::kPermissionDenied, "cannot write the inventory " + path +
                                                     ": cannot create a file in " + dir + ": " +
                                                     std::strerror(errno));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  // A file marked immutable or append-only cannot be replaced, even by root
  // in a writable folder.
  if (exists) {
    const int file = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    int flags = 0;
    if (file >= 0 && ::ioctl(file, FS_IOC_GETFLAGS, &flags) == 0 &&
        (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL))) {
      ::close(file);
      return Status(StatusCode::kPermissionDenied,
                    "cannot write the inventory " + path +
                        ": it is marked immutable or "
                        "append-only (lsattr; chattr -i -a to allow it)");
    }
    if (file >= 0) ::close(file);
  }
  return Status::Ok();
}

}  // namespace herd::control
