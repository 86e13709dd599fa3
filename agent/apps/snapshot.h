// Snapshots of an app's data folder, taken before an activation and put
// back when it reverts (docs/apps.md). A reflink of every file where the
// filesystem has them (instant, no space until the files change), else a
// copy when the data is at most `max_copy_bytes`; else none can be taken,
// and the activation needs an explicit --no-snapshot. Owners, modes and
// symbolic links are kept; other special files are skipped. Thread-safe
// (no state); the caller serialises work on one app.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace herd::agent {

// Copies folder `src` to `dst` (which must not exist; made complete under a
// temporary name, then renamed). "reflink" or "copy": what was used.
// kFailedPrecondition when neither is possible.
Result<std::string> SnapshotTree(const std::string& src, const std::string& dst,
                                 uint64_t max_copy_bytes);

// Puts `snapshot` in place of `data`: a fresh copy of the snapshot is made
// beside `data` and swapped in, so a crash leaves either folder whole and
// the snapshot itself is kept. Idempotent.
Status RestoreTree(const std::string& snapshot, const std::string& data);

// Removes a folder tree (no error when it is absent).
void RemoveTree(const std::string& path);

}  // namespace herd::agent
