#include "agent/apps/app_process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <sstream>
#include <vector>

#include "common/file.h"

namespace herd::agent {
namespace {

// The fields of /proc/PID/stat after the command name ("S 1 ..."), or "".
std::vector<std::string> StatFields(pid_t pid) {
  auto text = ReadFileToString("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!text.ok()) return {};
  const auto close = text->rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream in(text->substr(close + 1));
  std::vector<std::string> f;
  for (std::string w; in >> w;) f.push_back(w);
  return f;
}

// The number after `"key":` in bwrap's status text, or -1.
int64_t JsonNumber(const std::string& text, const std::string& key, bool last) {
  const std::string needle = "\"" + key + "\":";
  const auto at = last ? text.rfind(needle) : text.find(needle);
  if (at == std::string::npos) return -1;
  return std::strtoll(text.c_str() + at + needle.size(), nullptr, 10);
}

}  // namespace

int64_t ProcStartTime(pid_t pid) {
  // Fields from the state (field 3): starttime is field 22.
  auto f = StatFields(pid);
  if (f.size() < 20 || f[0] == "Z" || f[0] == "X") return 0;
  return std::strtoll(f[19].c_str(), nullptr, 10);
}

std::vector<std::pair<pid_t, uid_t>> ProcessesOf(const std::set<uid_t>& uids,
                                                 const std::string& proc) {
  std::vector<std::pair<pid_t, uid_t>> out;
  if (uids.empty()) return out;
  DIR* d = ::opendir(proc.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    auto status = ReadFileToString(proc + "/" + e->d_name + "/status", 8192);
    if (!status.ok()) continue;  // gone meanwhile
    // "State:\tZ (zombie)" and "Uid:\treal\teffective\tsaved\tfs".
    const auto state = status->find("\nState:\t");
    if (state == std::string::npos || state + 8 >= status->size()) continue;
    if (const char s = status->at(state + 8); s == 'Z' || s == 'X') continue;
    const auto at = status->find("\nUid:\t");
    if (at == std::string::npos) continue;
    std::istringstream in(status->substr(at + 6, 64));
    uid_t real = 0, effective = 0;
    if (!(in >> real >> effective)) continue;
    if (uids.count(real)) {
      out.emplace_back(static_cast<pid_t>(pid), real);
    } else if (uids.count(effective)) {
      out.emplace_back(static_cast<pid_t>(pid), effective);
    }
  }
  ::closedir(d);
  return out;
}

std::vector<std::pair<pid_t, uid_t>> KillProcessesOf(const std::set<uid_t>& uids,
                                                     std::chrono::milliseconds wait, size_t* left) {
  const auto killed = ProcessesOf(uids);
  for (const auto& p : killed) ::kill(p.first, SIGKILL);
  auto still = killed;
  // Gone within moments (SIGKILL); polled every 10 ms, bounded.
  for (auto waited = std::chrono::milliseconds(0); !still.empty() && waited < wait;
       waited += std::chrono::milliseconds(10)) {
    ::usleep(10'000);
    still = ProcessesOf(uids);
  }
  *left = still.size();
  return killed;
}

ProcUsage UsageOf(pid_t pid) {
  ProcUsage u;
  auto f = StatFields(pid);
  if (f.size() < 22) return u;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  u.cpu_seconds = static_cast<double>(std::strtoull(f[11].c_str(), nullptr, 10) +
                                      std::strtoull(f[12].c_str(), nullptr, 10)) /
                  tick;
  u.rss_bytes =
      std::strtoull(f[21].c_str(), nullptr, 10) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return u;
}

Result<UniqueFd> ListenSocket(const std::string& address, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1) {
    return Status::Invalid("bad listen address " + address);
  }
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  if (!fd.valid() || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(fd.get(), 128) != 0) {
    return Status(StatusCode::kUnavailable, "cannot listen on " + address + ":" +
                                                std::to_string(port) + ": " + std::strerror(errno));
  }
  return fd;
}

int64_t StatusChildPid(const std::string& path) {
  auto text = ReadFileToString(path, 1 << 16);
  const int64_t pid = text.ok() ? JsonNumber(*text, "child-pid", false) : -1;
  return pid > 0 ? pid : 0;
}

std::optional<int> StatusExitCode(const std::string& path) {
  auto text = ReadFileToString(path, 1 << 16);
  if (!text.ok()) return std::nullopt;
  const int64_t code = JsonNumber(*text, "exit-code", true);
  if (code < 0) return std::nullopt;
  return static_cast<int>(code);
}

std::string ClosedAncestor(const std::string& dir) {
  std::string path;
  size_t at = 0;
  while (at != std::string::npos) {
    at = dir.find('/', at + 1);
    path = dir.substr(0, at);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) return path;
  }
  return "";
}

Result<app::AppSpec> InstalledSpec(const std::string& dir, const std::string& name, uint64_t seq) {
  const std::string path = dir + "/" + name + "/" + std::to_string(seq) + "/manifest.json";
  auto text = ReadFileToString(path, 64 << 20);
  if (!text.ok()) {
    return Status::NotFound("app " + name + " has no installed version with sequence " +
                            std::to_string(seq));
  }
  auto m = app::ParseManifest(*text, path);
  if (!m.ok()) return m.status();
  return m->app;
}

void RotateLog(const std::string& path, uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) <= max_bytes) return;
  UniqueFd in(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  UniqueFd out(::open((path + ".1").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!in.valid() || !out.valid()) return;
  off_t left = st.st_size;
  while (left > 0) {
    const ssize_t n =
        ::copy_file_range(in.get(), nullptr, out.get(), nullptr, static_cast<size_t>(left), 0);
    if (n <= 0) break;
    left -= n;
  }
  (void)::ftruncate(in.get(), 0);
}

std::string TailLog(const std::string& path, size_t lines, size_t max_bytes) {
  std::string text;
  for (const std::string& p : {path + ".1", path}) {
    auto t = ReadFileToString(p, 64 << 20);
    if (t.ok()) text += *t;
  }
  if (lines == 0) return "";
  size_t start = text.size();
  if (start > 0 && text[start - 1] == '\n') --start;
  for (size_t seen = 0; start > 0;) {
    const auto nl = text.rfind('\n', start - 1);
    if (nl == std::string::npos) {
      start = 0;
    } else if (++seen == lines) {
      start = nl + 1;
      break;
    } else {
      start = nl;
    }
  }
  std::string out = text.substr(start);
  if (out.size() > max_bytes) out = out.substr(out.size() - max_bytes);
  return out;
}

std::string ReadLogFrom(const std::string& path, uint64_t* offset, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) return "";
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (*offset > size) *offset = 0;  // rotated: the new file from its start
  std::string out(static_cast<size_t>(std::min<uint64_t>(size - *offset, max_bytes)), '\0');
  const ssize_t n = ::pread(fd.get(), out.data(), out.size(), static_cast<off_t>(*offset));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  *offset += out.size();
  return out;
}

}  // namespace herd::agent
