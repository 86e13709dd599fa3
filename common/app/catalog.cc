#include "common/app/catalog.h"

#include <fmt/format.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "common/app/manifest.h"
#include "common/hash.h"
#include "common/text.h"

namespace herd::app {
namespace {

using nlohmann::json;

Status IndexError(const std::string& source, const std::string& where, const std::string& what) {
  return Status::Invalid(source + ": " + where + ": " + what);
}

// A whole number of at least 0 (JSON's -1 would otherwise wrap around).
uint64_t Unsigned(const json& j, const char* key) {
  const json& v = j.at(key);
  // At most 2^63 - 1: what a device's SQLite stores as it is.
  if (!v.is_number_unsigned() || v.get<uint64_t>() > uint64_t{INT64_MAX}) {
    throw std::invalid_argument(std::string(key) + " must be a whole number from 0 to 2^63 - 1");
  }
  return v.get<uint64_t>();
}

// A key id as KeyIdHex writes it.
bool IsKeyIdHex(const std::string& s) {
  return s.size() == 16 && s.find_first_not_of("0123456789ABCDEF") == std::string::npos;
}

Status ParseApp(const std::string& source, const std::string& name, const json& j,
                CatalogApp* out) {
  const std::string where = "apps." + name;
  if (std::string e = AppNameError(name); !e.empty()) {
    return IndexError(source, "apps." + Excerpt(name), "app name " + e);
  }
  for (const auto& [id, line] : j.at("publishers").items()) {
    auto key = ParsePublicKey(line.get<std::string>(), where + ".publishers." + Excerpt(id));
    if (!key.ok()) return IndexError(source, where + ".publishers", key.status().message());
    if (!IsKeyIdHex(id) || KeyIdHex(key->id) != id) {
      return IndexError(source, where + ".publishers." + Excerpt(id), "not the key's id");
    }
    out->publishers[id] = line.get<std::string>();
  }
  if (out->publishers.empty()) return IndexError(source, where, "no publisher key");
  out->min_sequence = Unsigned(j, "min_sequence");
  std::set<std::string> versions;
  for (const auto& v : j.at("versions")) {
    CatalogVersion cv;
    cv.version = v.at("version").get<std::string>();
    cv.sequence = Unsigned(v, "sequence");
    cv.sha256 = v.at("sha256").get<std::string>();
    cv.size = Unsigned(v, "size");
    cv.channel = v.at("channel").get<std::string>();
    cv.added_unix = v.at("added_unix").get<int64_t>();
    const std::string at = where + " version " + Excerpt(cv.version);
    if (std::string e = AppVersionError(cv.version); !e.empty()) {
      return IndexError(source, at, "version " + e);
    }
    if (!IsSha256Hex(cv.sha256)) return IndexError(source, at, "sha256 is not a digest");
    if (std::string e = ChannelError(cv.channel); !e.empty()) {
      return IndexError(source, at, "channel " + e);
    }
    if (cv.size == 0) return IndexError(source, at, "size is 0");
    if (!out->versions.empty() && cv.sequence <= out->versions.back().sequence) {
      return IndexError(source, at, "sequences must ascend");
    }
    if (!versions.insert(cv.version).second) return IndexError(source, at, "version repeats");
    out->versions.push_back(std::move(cv));
  }
  return Status::Ok();
}

}  // namespace

std::string CatalogBundlePath(const std::string& sha256) { return "bundles/" + sha256 + ".herd"; }

std::string ChannelError(const std::string& c) {
  if (c.empty() || c.size() > 32) return "must be 1 to 32 characters";
  if (c.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
    return "may hold only a-z, 0-9 and '-'";
  }
  return "";
}

std::string IndexText(const CatalogIndex& index) {
  json apps = json::object();
  for (const auto& [name, a] : index.apps) {
    json versions = json::array();
    for (const auto& v : a.versions) {
      versions.push_back({{"version", v.version},
                          {"sequence", v.sequence},
                          {"sha256", v.sha256},
                          {"size", v.size},
                          {"channel", v.channel},
                          {"added_unix", v.added_unix}});
    }
    apps[name] = {
        {"publishers", a.publishers}, {"min_sequence", a.min_sequence}, {"versions", versions}};
  }
  json j = {{"format", "herd-catalog-index-v1"},
            {"sequence", index.sequence},
            {"updated_unix", index.updated_unix},
            {"apps", apps}};
  return j.dump(2) + "\n";
}

Result<CatalogIndex> ParseIndex(std::string_view text, const std::string& source) {
  if (text.size() > kMaxIndexBytes) {
    return IndexError(source, "index", fmt::format("larger than {} bytes", kMaxIndexBytes));
  }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return IndexError(source, "index", "not a JSON object");
  if (!j.contains("format") || j["format"] != "herd-catalog-index-v1") {
    return IndexError(source, "format", "not herd-catalog-index-v1");
  }
  CatalogIndex index;
  try {
    index.sequence = Unsigned(j, "sequence");
    index.updated_unix = j.at("updated_unix").get<int64_t>();
    for (const auto& [name, a] : j.at("apps").items()) {
      if (Status s = ParseApp(source, name, a, &index.apps[name]); !s.ok()) return s;
    }
  } catch (const std::exception& e) {  // json's own, and Unsigned's
    return IndexError(source, "index", e.what());
  }
  if (index.sequence == 0) return IndexError(source, "sequence", "must be at least 1");
  return index;
}

Result<CatalogIndex> VerifyIndex(const PublicKey& key, std::string_view text,
                                 std::string_view signature, const std::string& source) {
  auto info = ReadSignature(signature);
  if (!info.ok()) {
    return Status(StatusCode::kPermissionDenied,
                  source + ": index signature: " + info.status().message());
  }
  if (info->key_id != key.id) {
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("{}: the index is signed by key {}, not by the catalogue key {} "
                              "this device trusts",
                              source, KeyIdHex(info->key_id), KeyIdHex(key.id)));
  }
  auto ok = Verify(key, text, signature);
  if (!ok.ok()) {
    return Status(StatusCode::kPermissionDenied,
                  source + ": index: " + ok.status().message() + " (altered after signing?)");
  }
  return ParseIndex(text, source);
}

Result<CatalogVersion> ResolveVersion(const CatalogIndex& index, const std::string& name,
                                      const std::string& version, const std::string& channel) {
  auto app = index.apps.find(name);
  if (app == index.apps.end()) {
    return Status::NotFound("the catalogue has no app " + name);
  }
  const CatalogApp& a = app->second;
  const CatalogVersion* newest = nullptr;
  for (const auto& v : a.versions) {
    if (!version.empty() && v.version != version) continue;
    if (!version.empty()) {
      if (v.channel != channel) {
        return Status(
            StatusCode::kFailedPrecondition,
            fmt::format("{} {} is on channel {}, not {}", name, version, v.channel, channel));
      }
      if (v.sequence < a.min_sequence) {
        return Status(StatusCode::kFailedPrecondition,
                      fmt::format("{} {} (sequence {}) is below the catalogue's minimum "
                                  "sequence {} for the app",
                                  name, version, v.sequence, a.min_sequence));
      }
      return v;
    }
    if (v.channel == channel && v.sequence >= a.min_sequence) newest = &v;
  }
  if (!version.empty()) {
    return Status::NotFound(fmt::format("the catalogue has no version {} of {}", version, name));
  }
  if (!newest) {
    return Status::NotFound(
        fmt::format("the catalogue has no version of {} on channel {}", name, channel));
  }
  return *newest;
}

Result<AppRef> ParseAppRef(const std::string& text) {
  AppRef ref;
  const auto at = text.find('@');
  ref.name = text.substr(0, at);
  if (at != std::string::npos) ref.version = text.substr(at + 1);
  if (std::string e = AppNameError(ref.name); !e.empty()) {
    return Status::Invalid("'" + Excerpt(text) + "': app name " + e);
  }
  if (at != std::string::npos) {
    if (std::string e = AppVersionError(ref.version); !e.empty()) {
      return Status::Invalid("'" + Excerpt(text) + "': version " + e);
    }
  }
  return ref;
}

}  // namespace herd::app
