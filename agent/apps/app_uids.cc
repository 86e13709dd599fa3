// AppStore's per-app parts: each app's uid, ports and data folder, and
// an app's removal (app_store.h).
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "agent/apps/app_store.h"
#include "agent/apps/snapshot.h"
#include "common/file.h"

namespace herd::agent {

namespace {

// "KEY NUMBER" lines in `path`: the number kept for `key`, or a new one, the
// first of base .. base + count - 1 that no key has and `usable` accepts.
Result<uint32_t> Allocate(const std::string& path, const std::string& key, uint32_t base,
                          uint32_t count, const std::function<bool(uint32_t)>& usable,
                          const std::string& what) {
  std::map<std::string, uint32_t> ids;
  std::set<uint32_t> taken;
  if (auto text = ReadFileToString(path, 1 << 20); text.ok()) {
    std::istringstream in(*text);
    std::string n;
    unsigned long id = 0;
    while (in >> n >> id) {
      ids[n] = static_cast<uint32_t>(id);
      taken.insert(static_cast<uint32_t>(id));
    }
  }
  if (auto it = ids.find(key); it != ids.end()) return it->second;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t id = base + i;
    if (taken.count(id) || !usable(id)) continue;
    ids[key] = id;
    std::string text;
    for (const auto& [n, u] : ids) text += n + " " + std::to_string(u) + "\n";
    if (Status s = WriteFileAtomic(path, text, 0644); !s.ok()) return s;
    spdlog::info("apps: {} has {} {}", key, what, id);
    return id;
  }
  return Status(StatusCode::kResourceExhausted,
                fmt::format("no free {} for {} in {} .. {}", what, key, base, base + count - 1));
}

}  // namespace

Result<uid_t> AppStore::AppUid(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto id = Allocate(
      dir_ + "/uids", name, settings_.uid_base, settings_.uid_count,
      [](uint32_t id) { return !::getpwuid(id) && !::getgrgid(id); }, "uid (apps.uid_base)");
  if (!id.ok()) return id.status();
  return static_cast<uid_t>(*id);
}

Result<int> AppStore::AppPort(const std::string& name, const std::string& listen) {
  std::lock_guard<std::mutex> lock(mu_);
  auto port = Allocate(
      dir_ + "/ports", name + "/" + listen, settings_.port_base, settings_.port_count,
      [](uint32_t p) { return p > 0 && p < 65536; }, "port (apps.port_base)");
  if (!port.ok()) return port.status();
  return static_cast<int>(*port);
}

Result<std::string> AppStore::DataDir(const std::string& name) {
  auto uid = AppUid(name);
  if (!uid.ok()) return uid.status();
  const std::string app_dir = dir_ + "/" + name, data = app_dir + "/data";
  if (::mkdir(app_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::Internal("cannot create " + app_dir + ": " + std::strerror(errno));
  }
  if (::mkdir(data.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::Internal("cannot create " + data + ": " + std::strerror(errno));
  struct stat st {};
  if (::lstat(data.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::Internal(data + " is not a folder");
  }
  if ((st.st_uid != *uid || st.st_gid != *uid) && ::chown(data.c_str(), *uid, *uid) != 0) {
    return Status::Internal("cannot give " + data + " to uid " + std::to_string(*uid) + ": " +
                            std::strerror(errno));
  }
  return data;
}

Status AppStore::RemoveApp(const std::string& name, bool purge) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string app_dir = dir_ + "/" + name;
  auto versions = Versions(name);
  for (const auto& v : versions) {
    const std::string seq = std::to_string(v.sequence), trash = app_dir + "/.trash-" + seq;
    if (::rename((app_dir + "/" + seq).c_str(), trash.c_str()) != 0) {
      return Status::Internal("cannot remove " + app_dir + "/" + seq + ": " + std::strerror(errno));
    }
    RemoveTree(trash);
  }
  for (const auto& v : versions) {
    bool used = false;
    for (const auto& w : List()) used = used || w.bundle_sha256 == v.bundle_sha256;
    if (!used) ::unlink(BundlePath(v.bundle_sha256).c_str());
  }
  RemoveTree(app_dir + "/snapshots");
  RemoveTree(app_dir + "/run");
  if (purge) RemoveTree(app_dir);
  spdlog::info("apps: removed {} ({} version(s){})", name, versions.size(),
               purge ? ", data purged" : ", data kept");
  return Status::Ok();
}

}  // namespace herd::agent
