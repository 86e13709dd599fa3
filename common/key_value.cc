#include "common/key_value.h"

namespace herd {

Result<std::pair<std::string, std::string>> ParseKeyValue(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::Invalid("expects KEY=VALUE, got '" + text.substr(0, 256) + "'");
  }
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

}  // namespace herd
