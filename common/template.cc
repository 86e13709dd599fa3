#include "common/template.h"

#include "common/text.h"

namespace herd {

Result<std::string> RenderTemplate(const std::string& text, const TemplateVars& vars,
                                   const std::string& where) {
  std::string out;
  size_t at = 0;
  while (true) {
    const size_t open = text.find("{{", at);
    if (open == std::string::npos) break;
    const size_t close = text.find("}}", open + 2);
    if (close == std::string::npos) {
      return Status::Invalid(where + ": '{{' without '}}'");
    }
    out.append(text, at, open - at);
    std::string name = text.substr(open + 2, close - open - 2);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    const auto dot = name.find('.');
    const std::string kind = name.substr(0, dot);
    const std::string key = dot == std::string::npos ? "" : name.substr(dot + 1);
    const std::map<std::string, std::string>* map = kind == "labels"  ? &vars.labels
                                                    : kind == "facts" ? &vars.facts
                                                                      : nullptr;
    if (name == "host.name") {
      out += vars.name;
    } else if (name == "host.address") {
      out += vars.address;
    } else if (map && map->count(key)) {
      out += map->at(key);
    } else {
      return Status::Invalid(where + ": unknown variable '{{ " + Excerpt(name) +
                             " }}' (host.name, host.address, labels.KEY, facts.KEY)");
    }
    at = close + 2;
  }
  out.append(text, at, std::string::npos);
  return out;
}

}  // namespace herd
