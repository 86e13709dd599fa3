#include "agent/apply/label_store.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/file.h"

namespace herd::agent {

LabelStore::LabelStore(std::string state_dir) : path_(std::move(state_dir) + "/labels.json") {
  auto text = ReadFileToString(path_, 1 << 20);
  if (!text.ok()) return;  // none yet
  const auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object()) {
    spdlog::warn("{}: not a JSON object of labels: ignored", path_);
    return;
  }
  for (const auto& [k, v] : j.items()) {
    if (v.is_string() && IsLabelName(k) && IsLabelValue(v.get<std::string>())) {
      kept_[k] = v.get<std::string>();
    }
  }
}

std::map<std::string, std::string> LabelStore::Kept() const {
  std::lock_guard<std::mutex> l(mu_);
  return kept_;
}

std::map<std::string, std::string> LabelStore::Merged(
    const std::map<std::string, std::string>& owner) const {
  auto out = Kept();
  for (const auto& [k, v] : owner) out[k] = v;
  return out;
}

Status LabelStore::Set(const std::map<std::string, std::string>& labels) {
  std::lock_guard<std::mutex> l(mu_);
  auto next = kept_;
  for (const auto& [k, v] : labels) next[k] = v;
  if (Status s = WriteFileAtomic(path_, nlohmann::json(next).dump() + "\n", 0600); !s.ok()) {
    return s;
  }
  kept_ = std::move(next);
  return Status::Ok();
}

bool IsLabelName(const std::string& name) {
  return !name.empty() && name.size() <= 63 &&
         name.find_first_not_of(
             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
             std::string::npos;
}

bool IsLabelValue(const std::string& value) {
  if (value.size() > 255) return false;
  for (const unsigned char c : value) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

}  // namespace herd::agent
