// Host-list folding and expansion: {node01..node05,node09} <-> "node[01-05,09]".
// Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace herd::control {

// Folds names into a compact, sorted, comma-separated list. Names sharing a
// prefix and suffix around their last run of digits (with the same zero
// padding) collapse into one bracket: node01,node02,node03,node09 ->
// "node[01-03,09]". Names without digits are listed as they are.
std::string FoldHosts(const std::vector<std::string>& names);

// Expands bracket ranges: "node[01-03,09]" -> node01,node02,node03,node09.
// Several brackets multiply out. Padding follows the first bound of a range
// ("[01-10]" pads to 2, "[1-10]" does not). Text without brackets is returned
// as the only element. Errors name the offending text.
Result<std::vector<std::string>> ExpandHosts(std::string_view pattern);

}  // namespace herd::control
