// CheckUniqueKeys: yaml-cpp keeps every entry of a mapping whose key repeats
// and node["key"] answers the first, so a repeated key would silently lose
// what the user wrote last. Both the inventory and the agent config loaders
// call this once on the parsed document. Stateless; safe from any thread.
#pragma once

#include <string>

#include "common/status.h"

namespace YAML {
class Node;
}

namespace herd {

// Ok, or kInvalidArgument "SOURCE:LINE:COL: duplicate key 'k' under 'a.b'
// (first at line N)" for the first repeated key of any mapping in `root`.
// A document of more than 20 million nodes (an alias bomb) is refused as well.
Status CheckUniqueKeys(const YAML::Node& root, const std::string& source);

}  // namespace herd
