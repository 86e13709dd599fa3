// Prometheus file_sd output for `herd targets`. Pure function.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "control/inventory.h"

namespace herd::control {

// One target group per host: {"targets": [metrics address], "labels": {...}}
// with herd_host=<name> plus the host's labels, names sanitised for Prometheus
// ([a-zA-Z_][a-zA-Z0-9_]*).
nlohmann::json FileSdTargets(const std::vector<const Host*>& hosts);
// The same as the text of a file_sd file (indented JSON, a final newline).
std::string FileSdText(const std::vector<const Host*>& hosts);

}  // namespace herd::control
