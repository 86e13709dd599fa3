// spdlog setup for herdd: human-readable text by default, one JSON object per
// line with --log-format json. Call once from main before any thread starts.
#pragma once

#include <string>

#include "common/status.h"

namespace herd::agent {

Status SetupLogging(const std::string& format, const std::string& level);

}  // namespace herd::agent
