// Whole-file reads and writes shared by agent and CLI (configs, inventories,
// PEM files, small state files).
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

namespace herd {

// The file's contents, or kNotFound "cannot read PATH: <reason>", or
// kInvalidArgument for a directory or for more than `max_bytes` (configs,
// inventories and PEM files are small; /dev/zero must not fill memory).
Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes = 64 << 20);

// Replaces `path` with `content` atomically: a temporary file in the same
// folder, fsync, rename, fsync of the folder. Readers see the old or the new
// file, never a part; on error the old file is untouched.
Status WriteFileAtomic(const std::string& path, const std::string& content, unsigned mode = 0644);

// Where the CLI keeps a user's file: `explicit_path` if given, else the
// environment variable `env_var`, else $XDG_CONFIG_HOME/herd/LEAF
// (~/.config/herd/LEAF).
std::string UserConfigPath(const std::string& explicit_path, const char* env_var,
                           const std::string& leaf);

// The folder part of `path`: "." when it has none, "/" for a file in the root.
std::string ParentDir(const std::string& path);

// Creates `dir` and any missing parents with `mode`; existing ones are kept.
Status MakeDirs(const std::string& dir, unsigned mode = 0700);

}  // namespace herd
