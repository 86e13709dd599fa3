// KEY=VALUE arguments (herd run -e, herd enroll --labels, herdd --label),
// parsed in one place. Stateless.
#pragma once

#include <string>
#include <utility>

#include "common/status.h"

namespace herd {

// {"KEY", "VALUE"} from "KEY=VALUE" (the value may be empty and may hold '=');
// kInvalidArgument "expects KEY=VALUE, got 'TEXT'" when there is no '=' or
// nothing before it. Callers put the flag's name in front of the message.
Result<std::pair<std::string, std::string>> ParseKeyValue(const std::string& text);

}  // namespace herd
