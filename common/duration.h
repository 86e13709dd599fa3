// Human durations ("500ms", "30s", "2m", "1h", bare number = seconds) and
// byte sizes ("64M", "1G", "512KiB", bare number = bytes).
#pragma once

#include <chrono>
#include <ctime>
#include <string>
#include <string_view>

#include "common/status.h"

namespace herd {

Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

// K/KiB, M/MiB, G/GiB (powers of 1024) or bytes; at most 2^50.
Result<uint64_t> ParseByteSize(std::string_view text);

// The other way, two units at most: "500ms", "45s", "2m0s", "3h5m", "2d4h".
std::string FormatDuration(std::chrono::milliseconds d);

// A point in time as a UTC calendar date, "2027-11-25".
std::string UtcDate(std::time_t t);
// ... and with the time of day, "2027-11-25 05:43:06Z".
std::string UtcTime(std::time_t t);

}  // namespace herd
