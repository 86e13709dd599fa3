#include "control/targets.h"

#include <cctype>

namespace herd::control {
namespace {

std::string PromLabelName(const std::string& key) {
  std::string out;
  for (char c : key) {
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '_';
  }
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out.insert(0, "_");
  if (out.rfind("__", 0) == 0) out.insert(0, "l");  // "__" is reserved by Prometheus
  return out;
}

}  // namespace

nlohmann::json FileSdTargets(const std::vector<const Host*>& hosts) {
  nlohmann::json out = nlohmann::json::array();
  for (const Host* h : hosts) {
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [k, v] : h->labels) labels[PromLabelName(k)] = v;
    labels["herd_host"] = h->name;
    out.push_back({{"targets", {h->metrics}}, {"labels", labels}});
  }
  return out;
}

std::string FileSdText(const std::vector<const Host*>& hosts) {
  return FileSdTargets(hosts).dump(2) + "\n";
}

}  // namespace herd::control
