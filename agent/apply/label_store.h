// LabelStore: the labels fleet operators gave this device (herd apply,
// herd provision), kept in <state_dir>/labels.json and reported by Info
// and Facts beside the owner's labels from the agent config, which win.
// Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "common/status.h"

namespace herd::agent {

class LabelStore {
 public:
  // Reads the file if there is one; a broken file is logged and ignored
  // (labels come back with the next apply).
  explicit LabelStore(std::string state_dir);

  std::map<std::string, std::string> Kept() const;
  // The owner's labels over the kept ones.
  std::map<std::string, std::string> Merged(const std::map<std::string, std::string>& owner) const;
  // Keeps `labels` (replacing those of the same names), written atomically.
  Status Set(const std::map<std::string, std::string>& labels);

 private:
  const std::string path_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> kept_;
};

// A label name: 1 to 63 of A-Z a-z 0-9 . _ - ; a value: at most 255 bytes,
// no control characters.
bool IsLabelName(const std::string& name);
bool IsLabelValue(const std::string& value);

}  // namespace herd::agent
