// AtomicFileWriter: receives a file in chunks and puts it in place only when
// its size and SHA-256 match: write to a temporary in the destination's
// directory, fsync, rename over the destination, fsync the directory. Until
// Commit() succeeds nothing at `path` changes; on destruction an uncommitted
// temporary is removed. A temporary left by an agent that was killed is
// found at the next start through a note in the state directory
// (RemoveLeftTemporaries). One instance per upload; not thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "agent/security/account.h"
#include "common/hash.h"
#include "common/status.h"

namespace herd::agent {

// What the written file is to be: mode, owner and group, and who writes it.
struct FileOptions {
  uint32_t mode = 0644;  // of a new file; of a replaced one only with set_mode
  bool set_mode = false;
  std::optional<uid_t> uid;  // unset: the replaced file's owner, or the writer's
  std::optional<gid_t> gid;  // unset: the replaced file's group, or the writer's
  bool allow_setid = false;  // setuid, setgid and sticky bits may be in the result
  // Opening, creating and renaming are checked as this account (null: the
  // agent). Outlives the writer.
  const Account* account = nullptr;
};

class AtomicFileWriter {
 public:
  // Validates the destination (absolute, parent exists, not a directory),
  // decides the mode, owner and group, and creates the temporary with them.
  // `notes_dir` (optional) receives a note naming the temporary while it
  // exists.
  static Result<std::unique_ptr<AtomicFileWriter>> Open(const std::string& path,
                                                        const FileOptions& options, uint64_t size,
                                                        const std::string& sha256,
                                                        const std::string& notes_dir = "");
  // `mode` for the file, new or replaced, written as the agent.
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
  // The file as it will be once committed.
  uint32_t mode() const { return mode_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }

 private:
  AtomicFileWriter() = default;
  Status Create(const std::string& path, const std::string& dir, const FileOptions& options);
  std::string path_, tmp_, sha256_, note_;
  const Account* account_ = nullptr;
  uint32_t mode_ = 0;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
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
