#include "common/text.h"

#include <cstdio>

namespace herd {

std::string Excerpt(std::string_view value, size_t max) {
  std::string out;
  for (size_t i = 0; i < value.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c < 0x20 || c == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (value.size() > max) out += "… (" + std::to_string(value.size()) + " bytes)";
  return out;
}

Status CheckText(std::string_view value, std::string_view what, size_t max_bytes) {
  if (value.find('\0') != std::string_view::npos) {
    return Status::Invalid(std::string(what) + " holds a NUL byte: '" + Excerpt(value) + "'");
  }
  if (value.size() > max_bytes) {
    return Status::Invalid(std::string(what) + " is longer than " + std::to_string(max_bytes) +
                           " bytes: '" + Excerpt(value) + "'");
  }
  return Status::Ok();
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsRolloutId(std::string_view id) {
  return id.size() <= 64 && id.find_first_not_of(
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789._-") == std::string_view::npos;
}

Status CheckAbsolutePath(std::string_view path, std::string_view what) {
  if (Status s = CheckText(path, what, 4095); !s.ok()) return s;
  if (path.empty() || path[0] != '/') {
    return Status::Invalid(std::string(what) + " '" + Excerpt(path) + "' must be an absolute path");
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end - start > 255) {
      return Status::Invalid(std::string(what) + " '" + Excerpt(path) +
                             "' has a name longer than 255 bytes");
    }
    start = end + 1;
  }
  return Status::Ok();
}

}  // namespace herd
