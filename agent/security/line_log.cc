#include "agent/security/line_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace herd::agent {

LineLog::LineLog(std::string path, uint64_t max_bytes, int keep)
    : path_(std::move(path)), max_bytes_(max_bytes), keep_(keep) {}

LineLog::~LineLog() { CloseLocked(); }

void LineLog::CloseLocked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status LineLog::OpenLocked() {
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

void LineLog::RotateLocked() {
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

Result<UniqueFd> LineLog::Write(std::string line, bool sync) {
  std::lock_guard<std::mutex> l(mu_);
  // One stat tells whether the path is still the file open (not moved away
  // or deleted by hand).
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
  if (!sync) return UniqueFd();
  // A duplicate: a rotation may close the original before the fsync.
  UniqueFd dup(::fcntl(fd_, F_DUPFD_CLOEXEC, 0));
  if (!dup.valid()) ::fsync(fd_);
  return dup;
}

void LineLog::Sync(UniqueFd fd) {
  if (fd.valid()) ::fsync(fd.get());
}

std::vector<std::string> LineLog::ReadLines() const {
  std::vector<std::ifstream> files;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (int i = keep_; i >= 0; --i) {
      files.emplace_back(i == 0 ? path_ : path_ + "." + std::to_string(i));
    }
  }
  std::vector<std::string> out;
  for (auto& in : files) {
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // no newline: a torn end, not a line
      out.push_back(std::move(line));
    }
  }
  return out;
}

std::string LineLog::LastLine(const std::function<bool(const std::string&)>& pred) const {
  for (int i = 0; i <= keep_; ++i) {
    std::ifstream in(i == 0 ? path_ : path_ + "." + std::to_string(i));
    std::string line, last;
    while (std::getline(in, line)) {
      if (in.eof()) break;
      if (pred(line)) last = std::move(line);
    }
    if (!last.empty()) return last;
  }
  return "";
}

}  // namespace herd::agent
