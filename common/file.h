// Whole-file reads shared by agent and CLI (configs, inventories, PEM files).
#pragma once

#include <string>

#include "common/status.h"

namespace herd {

// The file's contents, or kNotFound "cannot read PATH: <reason>".
Result<std::string> ReadFileToString(const std::string& path);

}  // namespace herd
