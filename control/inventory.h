// The fleet inventory: hosts (name, address, labels) and groups, loaded from
// YAML. Immutable once loaded; safe to share between threads for reading.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/defaults.h"
#include "common/status.h"

namespace herd::control {

struct Host {
  std::string name;
  std::string address;  // host:port, ready for gRPC ("[::1]:7420" for IPv6)
  std::map<std::string, std::string> labels;
  std::string metrics;  // host:port of /metrics; default: the address's host on 9420
};

struct Group {
  std::string name;
  std::vector<std::string> members;  // explicit host names, or...
  std::string selector;              // ...a selector (exactly one of the two is used)
  int line = 0;                      // 1-based line in the inventory file, for errors
};

struct Inventory {
  std::string source;       // file it came from, for messages
  std::vector<Host> hosts;  // in file order
  std::map<std::string, Group> groups;

  const Host* FindHost(const std::string& name) const;
  int IndexOf(const std::string& name) const;  // -1 if absent
};

// A host name the inventory takes: letters, digits, '-', '_', '.', starting
// with a letter or digit (never "-rf" or ".."), at most 253 characters, and
// not "all" (the selector for every host).
bool ValidHostName(const std::string& name);

// Parses inventory YAML text. `source` names the file in error messages, which
// look like "inventory.yaml:12:5: duplicate host 'node01' (first at line 3)".
Result<Inventory> ParseInventory(const std::string& yaml_text, const std::string& source);
Result<Inventory> LoadInventory(const std::string& path);

// Where the CLI looks: the explicit path if non-empty, else $HERD_INVENTORY,
// else $XDG_CONFIG_HOME/herd/inventory.yaml (~/.config/herd/inventory.yaml).
std::string ResolveInventoryPath(const std::string& explicit_path);

// Adds `host` to the inventory file at `path` (creating the file, and its
// folder, if missing) by inserting an entry at the end of the `hosts:` list:
// comments, order and everything else in the file stay as they were. The
// result is parsed before it replaces the file (atomically), so a file that
// would not load is never written. A host of the same name and address is
// left as it is (kAlreadyExists); the same name at another address is an error.
Status AddHostToInventoryFile(const std::string& path, const Host& host);

// Ok when AddHostToInventoryFile could replace `path`: its folder (the
// nearest existing one, when folders are still to be made) takes a new file.
// Probed by creating and removing a file there, so that root on a read-only
// file system is told as well. Run before enrolling a device.
Status CheckInventoryWritable(const std::string& path);

// Normalises "host", "host:port", "[v6]:port" into host:port, filling in
// `default_port` when none is given. Errors say why.
Result<std::string> NormaliseAddress(const std::string& text, int default_port = kDefaultAgentPort);

}  // namespace herd::control
