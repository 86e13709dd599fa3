// The fleet spec (fleet.yaml; configs/fleet.yaml is the sample): what each
// part of the fleet should have, as an ordered list of entries, each a
// selector (control/selector.h) and its items: labels, files, directories,
// guarded commands and app versions. `herd apply` (control/apply.h) makes
// hosts match it; this is its model, parsed and checked strictly, and the
// merge of the entries that select a host into that host's plan.
//
// Merge rule: entries apply in file order; for one host, a later entry's
// item replaces an earlier one's with the same key (a label by name, a file
// or directory by path, a command by name, an app by name); commands run
// in the order they first appear. A selector sees the labels that entries
// before it gave (beside the inventory's).
//
// Every check happens at parse time, local `source` files read included,
// so that an invalid spec is refused before any host is touched. Errors
// name the file, line and field. Plain values; thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/template.h"
#include "control/inventory.h"
#include "control/selector.h"

namespace herd::control {

struct SpecFile {
  std::string path;                // absolute
  std::string content;             // inline, or the `source` file's bytes
  std::string source;              // the local file it came from ("" inline)
  bool templated = false;          // {{ host.name }}, {{ labels.K }}, {{ facts.K }} substituted
  bool secret = false;             // never printed (--diff shows that it differs, not how)
  std::string mode, owner, group;  // "" keeps what is there (a new file: 0644, the writer)
  bool root = false;               // written as root (the device must allow it)
  int line = 0;
};

struct SpecDirectory {
  std::string path, mode, owner, group;
  bool root = false;
  int line = 0;
};

struct SpecCommand {
  std::string name;
  std::vector<std::string> run;  // argv, or...
  std::string shell;             // ...one /bin/sh -c line
  std::string creates;           // skip when this path exists
  std::string unless, onlyif;    // skip when `unless` exits 0; run only when `onlyif` exits 0
  bool root = false;             // needs root on the device
  int line = 0;
};

struct SpecApp {
  std::string name, version, channel;
  size_t canary = 1;
  std::string batch = "25%";
  std::optional<size_t> max_failures;
  int line = 0;
};

struct SpecEntry {
  std::string hosts;  // the selector's text
  std::optional<Selector> selector;
  int line = 0;
  std::map<std::string, std::string> labels;
  std::vector<SpecFile> files;
  std::vector<SpecDirectory> directories;
  std::vector<SpecCommand> commands;
  std::vector<SpecApp> apps;
};

struct FleetSpec {
  std::string source;
  std::vector<SpecEntry> entries;
};

// `text` is the spec; `source` names it in errors; `base_dir` is where
// relative `source:` paths of files are read from (the spec's folder).
Result<FleetSpec> ParseFleetSpec(const std::string& text, const std::string& source,
                                 const std::string& base_dir);
Result<FleetSpec> LoadFleetSpec(const std::string& path);

// One host's merged items (see the merge rule above).
struct HostPlan {
  std::map<std::string, std::string> labels;
  std::map<std::string, SpecFile> files;
  std::map<std::string, SpecDirectory> directories;
  std::vector<SpecCommand> commands;
  std::map<std::string, SpecApp> apps;
  bool empty() const {
    return labels.empty() && files.empty() && directories.empty() && commands.empty() &&
           apps.empty();
  }
};
// Plans for the hosts of `inv` that some entry selects, by host name. An
// entry whose selector names an unknown host or group is an error naming
// its line.
Result<std::map<std::string, HostPlan>> PlanHosts(const FleetSpec& spec, const Inventory& inv);

}  // namespace herd::control
