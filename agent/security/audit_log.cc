#include "agent/security/audit_log.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
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

AuditLog::~AuditLog() { CloseLocked(); }

void AuditLog::CloseLocked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status AuditLog::OpenLocked() {
  if (fd_ >= 0) return Status::Ok();
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) return Status::Internal("audit log " + path_ + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const Status err = Status::Internal("audit log " + path_ + ": " + std::strerror(errno));
    CloseLocked();
    return err;
  }
  size_ = static_cast<uint64_t>(st.st_size);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  // A line torn by a crash must not swallow the next entry: end it first.
  char last = '\n';
  torn_ = size_ > 0 && ::pread(fd_, &last, 1, st.st_size - 1) == 1 && last != '\n';
  return Status::Ok();
}

void AuditLog::RotateLocked() {
  // Lines appended without a sync must reach the disk before they move away
  // from the file whose next synced line would have carried them.
  if (fd_ >= 0) ::fsync(fd_);
  CloseLocked();
  for (int i = keep_ - 1; i >= 1; --i) {
    std::string from = path_ + "." + std::to_string(i), to = path_ + "." + std::to_string(i + 1);
    ::rename(from.c_str(), to.c_str());
  }
  ::rename(path_.c_str(), (path_ + ".1").c_str());
}

namespace {
// One "key":value member, escaped as nlohmann::json escapes (invalid UTF-8
// replaced), without building a JSON object per line.
template <class T>
void Member(std::string& out, const char* key, const T& value) {
  out += out.empty() ? "{\"" : ",\"";
  out += key;
  out += "\":";
  out += nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace

Status AuditLog::Append(const AuditEntry& e, bool sync) {
  using namespace std::chrono;
  const double now = duration<double>(system_clock::now().time_since_epoch()).count();
  std::string line;
  line.reserve(160 + e.caller.size() + e.args.size() + e.result.size());
  Member(line, "args", e.args);
  Member(line, "caller", e.caller);
  Member(line, "method", e.method);
  Member(line, "result", e.result);
  Member(line, "role", e.role);
  Member(line, "ts", now);
  line += "}\n";
  Status st = AppendLine(std::move(line), sync);
  if (!st.ok()) {
    ++write_errors_;
    if (on_write_error_) on_write_error_();
    int left_out = 0;
    if (error_lines_.Allow(&left_out)) {
      spdlog::error("audit entry not recorded ({} {}: {}): {}{}", e.caller, e.method, e.result,
                    st.message(),
                    left_out ? fmt::format(" ({} more failed writes not logged)", left_out) : "");
    }
  }
  return st;
}

Status AuditLog::AppendLine(std::string line, bool sync) {
  std::unique_lock<std::mutex> l(mu_);
  // The file stays open between lines: herdd is its only writer (one herdd
  // per state dir), so its size is known. One stat tells whether audit.log is
  // still the file open (not moved away or deleted by hand).
  struct stat st {};
  if (fd_ >= 0 && (::stat(path_.c_str(), &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_)) {
    CloseLocked();
  }
  if (Status s = OpenLocked(); !s.ok()) return s;
  if (size_ >= max_bytes_) {
    RotateLocked();
    if (Status s = OpenLocked(); !s.ok()) return s;
  }
  if (torn_) line.insert(0, 1, '\n');
  const ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    const int err = n < 0 ? errno : 0;
    if (sync) ::fsync(fd_);
    CloseLocked();  // reopened, and its end checked again, by the next line
    return Status::Internal("audit log " + path_ + ": " +
                            (n < 0 ? std::strerror(err) : "short write"));
  }
  size_ += line.size();
  torn_ = false;
  if (!sync) return Status::Ok();
  // The fsync runs outside the lock, on a duplicate (a rotation may close
  // the original meanwhile), so that other appends do not wait for the disk.
  const int dup_fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  l.unlock();
  if (dup_fd < 0) {
    std::lock_guard<std::mutex> again(mu_);
    if (fd_ >= 0) ::fsync(fd_);
    return Status::Ok();
  }
  ::fsync(dup_fd);
  ::close(dup_fd);
  return Status::Ok();
}

Status AuditLog::AppendAnonymous(AuditEntry e) {
  int suppressed = 0;
  if (!anonymous_.Allow(&suppressed)) return Status::Ok();
  if (suppressed > 0) {
    e.args += (e.args.empty() ? "" : " ") + std::string("(") + std::to_string(suppressed) +
              " earlier unauthenticated refusals not recorded: rate limit)";
  }
  return Append(e);
}

std::vector<std::string> AuditLog::Read(int64_t since, size_t limit) const {
  // The files are opened under the lock (no rotation in between) and read
  // after it, so that appends do not wait for a long read.
  std::vector<std::ifstream> files;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (int i = keep_; i >= 0; --i) {
      files.emplace_back(i == 0 ? path_ : path_ + "." + std::to_string(i));
    }
  }
  std::vector<std::string> out;
  for (auto& in : files) {
    for (std::string line; out.size() < limit && std::getline(in, line);) {
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
