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
#include "common/text.h"
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

bool ValidHostName(const std::string& s) {
  if (s.empty() || s.size() > 253 || s == "all") return false;
  if (!std::isalnum(static_cast<unsigned char>(s[0]))) return false;  // not -rf, not ..
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
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
    if (!ValidHostName(host.name)) {
      return Error(h["name"], "invalid host name '" + host.name +
                                  "' (letters, digits, '-', '_', '.'; starting with a letter or "
                                  "digit)");
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
  if (text.find("://") != std::string::npos) {
    return Status::Invalid("address '" + Excerpt(text) +
                           "': addresses are host[:port], without a scheme like http://");
  }
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
      return Status::Invalid("address '" + Excerpt(text) + "': '" + Excerpt(host) +
                             "' is not a valid host name or IP");
    }
    // All digits and dots: it can only be an IPv4 address, so it must be one.
    if (host.find_first_not_of("0123456789.") == std::string::npos) {
      int parts = 0;
      bool valid = true;
      for (size_t start = 0; start <= host.size();) {
        size_t dot = host.find('.', start);
        if (dot == std::string::npos) dot = host.size();
        const std::string part = host.substr(start, dot - start);
        valid = valid && !part.empty() && part.size() <= 3 && std::stoi(part) <= 255;
        ++parts;
        start = dot + 1;
      }
      if (!valid || parts != 4) {
        return Status::Invalid("address '" + Excerpt(text) + "': '" + host +
                               "' is not an IPv4 address (four numbers 0-255)");
      }
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
  auto loaded = LoadOneDocument(yaml_text, source, "an inventory");
  if (!loaded.ok()) return loaded.status();
  const YAML::Node root = *loaded;
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

std::string ResolveInventoryPath(const std::string& explicit_path) {
  return UserConfigPath(explicit_path, "HERD_INVENTORY", "inventory.yaml");
}

}  // namespace herd::control
