#include "agent/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace herd::agent {

AuditLog::AuditLog(std::string dir, uint64_t max_bytes, int keep)
    : dir_(std::move(dir)), path_(dir_ + "/audit.log"), max_bytes_(max_bytes), keep_(keep) {}

void AuditLog::RotateLocked() {
  // Lines appended without a sync must reach the disk before they move away
  // from the file whose next synced line would have carried them.
  if (int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  for (int i = keep_ - 1; i >= 1; --i) {
    std::string from = path_ + "." + std::to_string(i), to = path_ + "." + std::to_string(i + 1);
    ::rename(from.c_str(), to.c_str());
  }
  ::rename(path_.c_str(), (path_ + ".1").c_str());
}

Status AuditLog::Append(const AuditEntry& e, bool sync) {
  using namespace std::chrono;
  const double now = duration<double>(system_clock::now().time_since_epoch()).count();
  nlohmann::json j = {{"ts", now},          {"caller", e.caller}, {"role", e.role},
                      {"method", e.method}, {"args", e.args},     {"result", e.result}};
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> l(mu_);
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) >= max_bytes_) {
    RotateLocked();
  }
  int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Internal("audit log " + path_ + ": " + std::strerror(errno));
  // A line torn by a crash must not swallow this entry: end it first.
  char last = '\n';
  if (::fstat(fd, &st) == 0 && st.st_size > 0 && ::pread(fd, &last, 1, st.st_size - 1) == 1 &&
      last != '\n') {
    line.insert(0, 1, '\n');
  }
  ssize_t n = ::write(fd, line.data(), line.size());
  if (sync) ::fsync(fd);
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) {
    return Status::Internal("audit log " + path_ + ": short write");
  }
  return Status::Ok();
}

Status AuditLog::AppendAnonymous(AuditEntry e) {
  {
    std::lock_guard<std::mutex> l(anon_mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now - anon_window_ >= std::chrono::minutes(1)) {
      anon_window_ = now;
      anon_in_window_ = 0;
    }
    if (++anon_in_window_ > kAnonymousPerMinute) {
      ++anon_suppressed_;
      return Status::Ok();
    }
    if (anon_suppressed_ > 0) {
      e.args += (e.args.empty() ? "" : " ") + std::string("(") + std::to_string(anon_suppressed_) +
                " earlier unauthenticated refusals not recorded: rate limit)";
      anon_suppressed_ = 0;
    }
  }
  return Append(e);
}

std::vector<std::string> AuditLog::Read(int64_t since, size_t limit) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  for (int i = keep_; i >= 0 && out.size() < limit; --i) {
    std::ifstream in(i == 0 ? path_ : path_ + "." + std::to_string(i));
    for (std::string line; std::getline(in, line) && out.size() < limit;) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      // A torn line after a crash, or one that is not ours: skipped, not fatal.
      if (j.is_discarded() || !j.is_object() || !j.contains("ts") || !j["ts"].is_number()) {
        continue;
      }
      if (j["ts"].get<double>() >= static_cast<double>(since)) out.push_back(line);
    }
  }
  return out;
}

}  // namespace herd::agent
