// CheckUniqueKeys: yaml-cpp keeps every entry of a mapping whose key repeats
// and node["key"] answers the first, so a repeated key would silently lose
// what the user wrote last. Both the inventory and the agent config loaders
// call this once on the parsed document. Stateless; safe from any thread.
#pragma once

#include <yaml-cpp/mark.h>
#include <yaml-cpp/node/node.h>

#include <string>

#include "common/status.h"

namespace herd {

// Ok, or kInvalidArgument "SOURCE:LINE:COL: duplicate key 'k' under 'a.b'
// (first at line N)" for the first repeated key of any mapping in `root`.
// A document of more than 20 million nodes (an alias bomb) is refused as well.
Status CheckUniqueKeys(const YAML::Node& root, const std::string& source);

// kInvalidArgument "SOURCE:LINE:COL: message" (without LINE:COL for a
// mark yaml-cpp does not know).
Status YamlError(const std::string& source, const YAML::Mark& mark, const std::string& message);

// The one YAML document in `text` (a null node for an empty text), or
// kInvalidArgument "SOURCE:LINE:COL: message" for a syntax error and for a
// second document, whose start it names. Use it instead of YAML::LoadAll,
// which never returns on a stray ',' after a top-level flow collection
// ("[a],"), and of YAML::Load, which drops whatever follows the first
// document unseen. `what` names the file's kind ("an inventory").
Result<YAML::Node> LoadOneDocument(const std::string& text, const std::string& source,
                                   const std::string& what);

}  // namespace herd
