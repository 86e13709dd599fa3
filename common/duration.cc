#include "common/duration.h"

#include <cctype>
#include <ctime>
#include <string>

namespace herd {

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  size_t i = 0;
  double value = 0;
  bool digits = false, dot = false;
  double scale = 0.1;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digits = true;
      if (dot) {
        value += (c - '0') * scale;
        scale /= 10;
      } else {
        value = value * 10 + (c - '0');
      }
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  std::string_view unit = text.substr(i);
  double ms_per_unit;
  if (unit.empty() || unit == "s") {
    ms_per_unit = 1000;
  } else if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "m") {
    ms_per_unit = 60'000;
  } else if (unit == "h") {
    ms_per_unit = 3'600'000;
  } else {
    digits = false;
  }
  if (!digits) {
    return Status::Invalid("invalid duration '" + std::string(text) +
                           "' (expected e.g. 500ms, 30s, 2m, 1h)");
  }
  return std::chrono::milliseconds(static_cast<long long>(value * ms_per_unit + 0.5));
}

std::string FormatDuration(std::chrono::milliseconds d) {
  const long long ms = d.count();
  if (ms == 0) return "0s";
  if (ms < 1000) return std::to_string(ms) + "ms";
  const long long s = ms / 1000;
  auto two = [](long long a, const char* ua, long long b, const char* ub) {
    return std::to_string(a) + ua + std::to_string(b) + ub;
  };
  if (s >= 86400) return two(s / 86400, "d", (s % 86400) / 3600, "h");
  if (s >= 3600) return two(s / 3600, "h", (s % 3600) / 60, "m");
  if (s >= 60) return two(s / 60, "m", s % 60, "s");
  return std::to_string(s) + "s";
}

namespace {
std::string FormatUtc(std::time_t t, const char* format) {
  std::tm tm{};
  char buf[32] = "?";
  if (gmtime_r(&t, &tm)) std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}
}  // namespace

std::string UtcDate(std::time_t t) { return FormatUtc(t, "%Y-%m-%d"); }

std::string UtcTime(std::time_t t) { return FormatUtc(t, "%Y-%m-%d %H:%M:%SZ"); }

Result<uint64_t> ParseByteSize(std::string_view text) {
  const std::string s(text);
  const auto bad = Status::Invalid("'" + s + "' is not a size like 64M, 1G or 4096");
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) return bad;
  size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(s, &used);
  } catch (...) {
    return bad;
  }
  const std::string unit = s.substr(used);
  const uint64_t mult = unit.empty()                   ? 1
                        : unit == "K" || unit == "KiB" ? 1ull << 10
                        : unit == "M" || unit == "MiB" ? 1ull << 20
                        : unit == "G" || unit == "GiB" ? 1ull << 30
                                                       : 0;
  if (mult == 0 || v > (1ull << 50) / mult) return bad;
  return static_cast<uint64_t>(v * mult);
}

}  // namespace herd
