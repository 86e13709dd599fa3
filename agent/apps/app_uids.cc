// AppStore's accounts part: each app's uid and data folder (app_store.h).
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "agent/apps/app_store.h"
#include "common/file.h"

namespace herd::agent {

Result<uid_t> AppStore::AppUid(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string path = dir_ + "/uids";
  std::map<std::string, uid_t> uids;
  std::set<uid_t> taken;
  if (auto text = ReadFileToString(path, 1 << 20); text.ok()) {
    std::istringstream in(*text);
    std::string n;
    unsigned long id = 0;
    while (in >> n >> id) {
      uids[n] = static_cast<uid_t>(id);
      taken.insert(static_cast<uid_t>(id));
    }
  }
  if (auto it = uids.find(name); it != uids.end()) return it->second;
  for (uint32_t i = 0; i < settings_.uid_count; ++i) {
    const uid_t id = settings_.uid_base + i;
    if (taken.count(id) || ::getpwuid(id) || ::getgrgid(id)) continue;
    uids[name] = id;
    std::string text;
    for (const auto& [n, u] : uids) text += n + " " + std::to_string(u) + "\n";
    if (Status s = WriteFileAtomic(path, text, 0644); !s.ok()) return s;
    spdlog::info("apps: {} runs as uid {}", name, id);
    return id;
  }
  return Status(StatusCode::kResourceExhausted,
                fmt::format("no free uid for app {} in apps.uid_base {} + uid_count {}", name,
                            settings_.uid_base, settings_.uid_count));
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

}  // namespace herd::agent
