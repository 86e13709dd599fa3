// Parsing of human durations ("500ms", "30s", "2m", "1h", bare number = seconds).
#pragma once

#include <chrono>
#include <string_view>

#include "common/status.h"

namespace herd {

Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

}  // namespace herd
