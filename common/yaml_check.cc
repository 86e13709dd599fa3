#include "common/yaml_check.h"

#include <yaml-cpp/yaml.h>

#include <map>

namespace herd {
namespace {

// Far above any real inventory (100k hosts are ~1.5M nodes), far below what an
// alias bomb expands to.
constexpr size_t kMaxNodes = 20'000'000;
constexpr int kMaxDepth = 64;

class Walker {
 public:
  explicit Walker(const std::string& source) : source_(source) {}

  Status Walk(const YAML::Node& node, const std::string& path, int depth) {
    if (++visited_ > kMaxNodes) {
      return Error(node, "more than " + std::to_string(kMaxNodes) + " YAML nodes (an alias bomb?)");
    }
    if (depth > kMaxDepth) {
      return Error(node, "nested more than " + std::to_string(kMaxDepth) + " levels deep");
    }
    if (node.IsSequence()) {
      for (const auto& item : node) {
        if (Status s = Walk(item, path, depth + 1); !s.ok()) return s;
      }
    } else if (node.IsMap()) {
      std::map<std::string, int> first_line;
      for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key = it->first;
        const YAML::Node value = it->second;
        const std::string name = key.IsScalar() ? key.Scalar() : "";
        if (key.IsScalar()) {  // complex keys (rare, never herd's) are not compared
          auto [seen, fresh] = first_line.emplace(name, key.Mark().line + 1);
          if (!fresh) {
            return Error(key, "duplicate key '" + name + "'" +
                                  (path.empty() ? "" : " under '" + path + "'") +
                                  " (first at line " + std::to_string(seen->second) + ")");
          }
        }
        const std::string child = path.empty() ? name : path + "." + name;
        if (Status s = Walk(value, child, depth + 1); !s.ok()) return s;
      }
    }
    return Status::Ok();
  }

 private:
  Status Error(const YAML::Node& node, const std::string& msg) const {
    const YAML::Mark m = node.Mark();
    std::string where = source_;
    if (m.line >= 0) where += ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
    return Status::Invalid(where + ": " + msg);
  }

  const std::string& source_;
  size_t visited_ = 0;
};

}  // namespace

Status CheckUniqueKeys(const YAML::Node& root, const std::string& source) {
  if (!root) return Status::Ok();
  return Walker(source).Walk(root, "", 0);
}

}  // namespace herd
