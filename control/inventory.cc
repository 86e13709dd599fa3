#include "control/inventory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/file.h"
#include "common/yaml_check.h"
#include "control/selector.h"

namespace herd::control {

const Host* Inventory::FindHost(const std::string& name) const {
  int i = IndexOf(name);
  return i < 0 ? nullptr : &hosts[i];
}

int Inventory::IndexOf(const std::string& name) const {
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (hosts[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

namespace {

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

bool ValidLabelKey(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != '/') {
      return false;
    }
  }
  return true;
}

class Loader {
 public:
  explicit Loader(std::string source) : source_(std::move(source)) {}

  Status Error(const YAML::Node& node, const std::string& msg) const {
    const YAML::Mark m = node.Mark();
    std::ostringstream os;
    os << source_;
    if (m.line >= 0) os << ":" << m.line + 1 << ":" << m.column + 1;
    os << ": " << msg;
    return Status::Invalid(os.str());
  }
  int Line(const YAML::Node& node) const { return node.Mark().line + 1; }

  Result<Inventory> Load(const YAML::Node& root) {
    Inventory inv;
    inv.source = source_;
    if (!root || root.IsNull()) return inv;  // empty file: empty inventory
    if (!root.IsMap()) return Error(root, "inventory must be a mapping with 'hosts' and 'groups'");
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      if (key != "hosts" && key != "groups") {
        return Error(it->first, "unknown key '" + key + "' (expected 'hosts' or 'groups')");
      }
    }
    if (auto hosts = root["hosts"]) {
      if (!hosts.IsSequence() && !hosts.IsNull()) {
        return Error(hosts, "'hosts' must be a list of {name, address, labels}");
      }
      std::map<std::string, int> seen;
      for (const auto& h : hosts) {
        auto host = LoadHost(h);
        if (!host.ok()) return host.status();
        auto [it, fresh] = seen.emplace(host->name, Line(h));
        if (!fresh) {
          return Error(h, "duplicate host '" + host->name + "' (first at line " +
                              std::to_string(it->second) + ")");
        }
        inv.hosts.push_back(std::move(*host));
      }
    }
    if (auto groups = root["groups"]) {
      if (!groups.IsMap() && !groups.IsNull()) {
        return Error(groups, "'groups' must map group names to a host list or {selector: ...}");
      }
      for (auto it = groups.begin(); it != groups.end(); ++it) {
        Group g;
        g.name = it->first.as<std::string>();
        g.line = Line(it->first);
        if (!ValidName(g.name)) return Error(it->first, "invalid group name '" + g.name + "'");
        if (inv.groups.count(g.name)) {
          return Error(it->first, "duplicate group '" + g.name + "'");
        }
        const YAML::Node v = it->second;  // a copy: it-> yields a temporary
        if (v.IsSequence()) {
          for (const auto& m : v) {
            if (!m.IsScalar()) return Error(m, "group '" + g.name + "': members are host names");
            std::string name = m.as<std::string>();
            if (inv.IndexOf(name) < 0) {
              return Error(m, "group '" + g.name + "': unknown host '" + name + "'");
            }
            g.members.push_back(name);
          }
        } else if (v.IsMap() && v["selector"] && v.size() == 1) {
          g.selector = v["selector"].as<std::string>();
          auto parsed = ParseSelector(g.selector);
          if (!parsed.ok()) {
            return Error(v["selector"], "group '" + g.name + "': " + parsed.status().message());
          }
        } else {
          return Error(
              v, "group '" + g.name + "' must be a list of host names or {selector: \"...\"}");
        }
        inv.groups.emplace(g.name, std::move(g));
      }
      // Selector groups must resolve now (unknown groups, cycles, hosts), not
      // when someone first uses them.
      for (const auto& [name, g] : inv.groups) {
        if (g.selector.empty()) continue;
        auto sel = ParseSelector(g.selector);
        auto r = sel.ok() ? sel->Evaluate(inv) : Result<std::vector<size_t>>(sel.status());
        if (!r.ok()) {
          return Status::Invalid(source_ + ":" + std::to_string(g.line) + ": group '" + name +
                                 "': " + r.status().message());
        }
      }
    }
    return inv;
  }

 private:
  Result<Host> LoadHost(const YAML::Node& h) {
    if (!h.IsMap()) return Error(h, "each host must be a mapping with 'name' and 'address'");
    Host host;
    for (auto it = h.begin(); it != h.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      if (key != "name" && key != "address" && key != "labels" && key != "metrics") {
        return Error(it->first,
                     "unknown host key '" + key + "' (expected name, address, labels, metrics)");
      }
    }
    if (!h["name"] || !h["name"].IsScalar()) return Error(h, "host without a 'name'");
    host.name = h["name"].as<std::string>();
    if (host.name == "all") {
      return Error(h["name"], "'all' is reserved for the selector that means every host");
    }
    if (!ValidName(host.name)) {
      return Error(h["name"],
                   "invalid host name '" + host.name + "' (letters, digits, '-', '_', '.')");
    }
    if (!h["address"] || !h["address"].IsScalar()) {
      return Error(h, "host '" + host.name + "' has no 'address'");
    }
    auto addr = NormaliseAddress(h["address"].as<std::string>());
    if (!addr.ok()) {
      return Error(h["address"], "host '" + host.name + "': " + addr.status().message());
    }
    host.address = *addr;
    std::string metrics = host.address.substr(0, host.address.rfind(':'));
    if (auto m = h["metrics"]) {
      if (!m.IsScalar()) return Error(m, "host '" + host.name + "': metrics must be host:port");
      metrics = m.as<std::string>();
    }
    auto maddr = NormaliseAddress(metrics, kDefaultMetricsPort);
    if (!maddr.ok()) {
      return Error(h["metrics"] ? h["metrics"] : h,
                   "host '" + host.name + "': metrics " + maddr.status().message());
    }
    host.metrics = *maddr;
    if (auto labels = h["labels"]) {
      if (!labels.IsMap()) return Error(labels, "host '" + host.name + "': labels must be a map");
      for (auto it = labels.begin(); it != labels.end(); ++it) {
        std::string k = it->first.as<std::string>();
        if (!ValidLabelKey(k)) {
          return Error(it->first, "host '" + host.name + "': invalid label key '" + k + "'");
        }
        if (!it->second.IsScalar()) {
          return Error(it->second, "host '" + host.name + "': label '" + k + "' must be a string");
        }
        host.labels[k] = it->second.as<std::string>();
      }
    }
    return host;
  }

  std::string source_;
};

}  // namespace

Result<std::string> NormaliseAddress(const std::string& text, int default_port) {
  std::string host, port;
  bool has_port = false;
  if (text.empty()) return Status::Invalid("empty address");
  if (text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return Status::Invalid("address '" + text + "': missing ']'");
    host = text.substr(1, close - 1);
    std::string rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return Status::Invalid("address '" + text + "': expected ':' after ']'");
      port = rest.substr(1);
      has_port = true;
    }
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
      return Status::Invalid("address '" + text + "': bad IPv6 literal");
    }
    host = "[" + host + "]";
  } else {
    size_t colon = text.rfind(':');
    if (colon != std::string::npos && text.find(':') != colon) {
      return Status::Invalid("address '" + text +
                             "': IPv6 addresses need brackets, e.g. [::1]:7420");
    }
    host = text.substr(0, colon);
    if (colon != std::string::npos) {
      port = text.substr(colon + 1);
      has_port = true;
    }
    static const std::regex kHost("^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$");
    if (!std::regex_match(host, kHost)) {
      return Status::Invalid("address '" + text + "': '" + host +
                             "' is not a valid host name or IP");
    }
  }
  if (!has_port) {
    port = std::to_string(default_port);
  } else {
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535) {
      return Status::Invalid("address '" + text + "': port '" + port + "' is not 1-65535");
    }
  }
  return host + ":" + port;
}

Result<Inventory> ParseInventory(const std::string& yaml_text, const std::string& source) {
  auto error = [&](const YAML::Exception& e) {
    std::ostringstream os;
    os << source;
    if (e.mark.line >= 0) os << ":" << e.mark.line + 1 << ":" << e.mark.column + 1;
    os << ": " << e.msg;
    return Status::Invalid(os.str());
  };
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return error(e);
  }
  try {
    if (Status s = CheckUniqueKeys(root, source); !s.ok()) return s;
    return Loader(source).Load(root);
  } catch (const YAML::Exception& e) {
    return error(e);
  }
}

Result<Inventory> LoadInventory(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::Invalid("inventory " + path + " is a directory, not a YAML file");
  }
  auto text = ReadFileToString(path);
  if (!text.ok()) {
    if (text.status().code() != StatusCode::kNotFound) {
      return Status(text.status().code(), "inventory: " + text.status().message());
    }
    return Status::NotFound("inventory: " + text.status().message() +
                            " (use -i FILE or set HERD_INVENTORY)");
  }
  return ParseInventory(*text, path);
}

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
  return Status::Ok();
}

std::string ResolveInventoryPath(const std::string& explicit_path) {
  return UserConfigPath(explicit_path, "HERD_INVENTORY", "inventory.yaml");
}

}  // namespace herd::control
