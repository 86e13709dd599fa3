#include "common/yaml_check.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <sstream>

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

// Counts documents and remembers where each starts; builds nothing.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  std::vector<YAML::Mark> starts;
};

}  // namespace

Status YamlError(const std::string& source, const YAML::Mark& mark, const std::string& message) {
  std::ostringstream os;
  os << source;
  if (mark.line >= 0) os << ":" << mark.line + 1 << ":" << mark.column + 1;
  os << ": " << message;
  return Status::Invalid(os.str());
}

Result<YAML::Node> LoadOneDocument(const std::string& text, const std::string& source,
                                   const std::string& what) {
  try {
    {
      std::istringstream in(text);
      YAML::Parser parser(in);
      DocumentCounter counter;
      // Two calls at most: a parser stuck on the same spot answers "another
      // document" forever.
      for (int i = 0; i < 2 && parser.HandleNextDocument(counter); ++i) {
      }
      if (counter.starts.size() > 1) {
        return YamlError(source, counter.starts[1],
                         "a second YAML document starts here (after --- or a stray ','); " + what +
                             " is one document");
      }
    }
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return YamlError(source, e.mark, e.msg);
  }
}

Status CheckUniqueKeys(const YAML::Node& root, const std::string& source) {
  if (!root) return Status::Ok();
  return Walker(source).Walk(root, "", 0);
}

}  // namespace herd
