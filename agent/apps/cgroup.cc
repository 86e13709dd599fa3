#include "agent/apps/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/file.h"

namespace herd::agent {
namespace {

constexpr const char* kGroup = "herd-apps";

Status WriteValue(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid() || ::write(fd.get(), value.data(), value.size()) < 0) {
    return Status::Internal("cannot write " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

bool MakeDir(const std::string& path) {
  return ::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST;
}

}  // namespace

AppCgroups::AppCgroups(std::string root) : root_(std::move(root)) {
  if (::geteuid() != 0) return;
  auto controllers = ReadFileToString(root_ + "/cgroup.controllers", 4096);
  if (controllers.ok()) {
    // v2: the controllers must be handed down to herd-apps and its groups.
    if (controllers->find("memory") == std::string::npos ||
        controllers->find("pids") == std::string::npos || !MakeDir(root_ + "/" + kGroup) ||
        !WriteValue(root_ + "/cgroup.subtree_control", "+memory +pids").ok() ||
        !WriteValue(root_ + "/" + kGroup + "/cgroup.subtree_control", "+memory +pids").ok()) {
      return;
    }
    mode_ = "cgroup-v2";
    return;
  }
  if (MakeDir(root_ + "/memory/" + kGroup) && MakeDir(root_ + "/pids/" + kGroup) &&
      ::access((root_ + "/memory/" + kGroup + "/cgroup.procs").c_str(), W_OK) == 0 &&
      ::access((root_ + "/pids/" + kGroup + "/cgroup.procs").c_str(), W_OK) == 0) {
    mode_ = "cgroup-v1";
  }
}

std::vector<std::string> AppCgroups::Dirs(const std::string& app) const {
  if (mode_ == "cgroup-v2") return {root_ + "/" + kGroup + "/" + app};
  if (mode_ == "cgroup-v1") {
    return {root_ + "/memory/" + kGroup + "/" + app, root_ + "/pids/" + kGroup + "/" + app};
  }
  return {};
}

Result<std::vector<UniqueFd>> AppCgroups::Prepare(const std::string& app, uint64_t memory_bytes,
                                                  uint64_t pids) {
  std::vector<UniqueFd> fds;
  for (const std::string& dir : Dirs(app)) {
    if (!MakeDir(dir))
      return Status::Internal("cannot create " + dir + ": " + std::strerror(errno));
  }
  const auto dirs = Dirs(app);
  Status s;
  if (mode_ == "cgroup-v2") {
    if (memory_bytes) s = WriteValue(dirs[0] + "/memory.max", std::to_string(memory_bytes));
    if (s.ok() && pids) s = WriteValue(dirs[0] + "/pids.max", std::to_string(pids));
  } else if (mode_ == "cgroup-v1") {
    if (memory_bytes)
      s = WriteValue(dirs[0] + "/memory.limit_in_bytes", std::to_string(memory_bytes));
    if (s.ok() && pids) s = WriteValue(dirs[1] + "/pids.max", std::to_string(pids));
  }
  if (!s.ok()) return s;
  for (const std::string& dir : dirs) {
    UniqueFd fd(::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) return Status::Internal("cannot open " + dir + "/cgroup.procs");
    fds.push_back(std::move(fd));
  }
  return fds;
}

uint64_t AppCgroups::MemoryBytes(const std::string& app) const {
  const auto dirs = Dirs(app);
  if (dirs.empty()) return 0;
  auto text = ReadFileToString(
      dirs[0] + (mode_ == "cgroup-v2" ? "/memory.current" : "/memory.usage_in_bytes"), 64);
  return text.ok() ? std::strtoull(text->c_str(), nullptr, 10) : 0;
}

void AppCgroups::Remove(const std::string& app) const {
  for (const std::string& dir : Dirs(app)) ::rmdir(dir.c_str());
}

}  // namespace herd::agent
