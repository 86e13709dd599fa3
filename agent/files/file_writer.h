// AtomicFileWriter: receives a file in chunks and puts it in place only when
// its size and SHA-256 match: write to a temporary in the destination's
// directory, fsync, rename over the destination, fsync the directory. Until
// Commit() succeeds nothing at `path` changes; on destruction an uncommitted
// temporary is removed. A temporary left by an agent that was killed is
// found at the next start through a note in the state directory
// (RemoveLeftTemporaries). One instance per upload; not thread-safe.
#pragma once

#include <memory>
#include <string>

#include "common/hash.h"
#include "common/status.h"

namespace herd::agent {

class AtomicFileWriter {
 public:
  // Validates the destination (absolute, parent exists, not a directory) and
  // creates the temporary.
  // `notes_dir` (optional) receives a note naming the temporary while it
  // exists.
  static Result<std::unique_ptr<AtomicFileWriter>> Open(const std::string& path, uint32_t mode,
                                                        uint64_t size, const std::string& sha256,
                                                        const std::string& notes_dir = "");
  ~AtomicFileWriter();

  Status Write(const std::string& chunk);
  // Verifies size and checksum, then renames into place.
  Status Commit();
  uint64_t written() const { return written_; }
  const std::string& path() const { return path_; }
  const std::string& sha256() const { return sha256_; }

 private:
  AtomicFileWriter() = default;
  std::string path_, tmp_, sha256_, note_;
  uint64_t size_ = 0, written_ = 0;
  int fd_ = -1;
  bool committed_ = false;
  Sha256 hash_;
};

// Removes the temporaries the notes in `notes_dir` name (uploads a killed
// agent left behind), and the notes. Only files named like herd's
// temporaries are removed. Returns how many.
int RemoveLeftTemporaries(const std::string& notes_dir);

}  // namespace herd::agent
