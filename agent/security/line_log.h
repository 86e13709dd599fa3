// LineLog: one bounded, append-only file of lines: the audit log and the
// refusal log. The file stays open between lines (herdd is its only writer:
// one herdd per state dir); a line torn by a crash is ended before the next
// one; a file moved away or deleted by hand is started again at its path;
// past max_bytes it rotates to NAME.1 .. NAME.<keep>. Thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace herd::agent {

class LineLog {
 public:
  LineLog(std::string path, uint64_t max_bytes, int keep);
  ~LineLog();
  LineLog(const LineLog&) = delete;
  LineLog& operator=(const LineLog&) = delete;

  // Appends `line` (ending in '\n'). With `sync`, returns a descriptor of
  // the file to fsync once the caller holds no lock (Sync), so that other
  // appends do not wait for the disk; without, an invalid one.
  Result<UniqueFd> Write(std::string line, bool sync);
  static void Sync(UniqueFd fd);

  // Every complete line of the kept files, oldest first. The files are
  // opened under the lock (no rotation in between) and read after it.
  std::vector<std::string> ReadLines() const;
  // The last complete line for which `pred` holds, looking through the
  // newest file first ("" if none). Reads one file at a time.
  std::string LastLine(const std::function<bool(const std::string&)>& pred) const;
  const std::string& path() const { return path_; }

 private:
  Status OpenLocked();  // opens the file unless open; learns its size and end
  void CloseLocked();
  void RotateLocked();
  const std::string path_;
  const uint64_t max_bytes_;
  const int keep_;
  mutable std::mutex mu_;  // serialises appends, rotation and the opening of reads
  int fd_ = -1;            // the file, open between appends
  uint64_t size_ = 0;      // its size
  bool torn_ = false;      // it ends in a line torn by a crash
  dev_t dev_ = 0;          // which file it is, to notice it moved away
  ino_t ino_ = 0;
};

}  // namespace herd::agent
