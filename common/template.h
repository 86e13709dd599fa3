// The fleet spec's file templates (docs/provisioning.md, "Templates"): a
// small documented substitution, not a template language. The agent renders
// them: it knows its facts. Stateless.
#pragma once

#include <map>
#include <string>

#include "common/status.h"

namespace herd {

// The documented substitution of a templated file: {{ host.name }},
// {{ host.address }}, {{ labels.KEY }}, {{ facts.KEY }} (spaces inside the
// braces optional). An unknown variable is an error naming it and `where`.
struct TemplateVars {
  std::string name, address;
  std::map<std::string, std::string> labels, facts;
};
Result<std::string> RenderTemplate(const std::string& text, const TemplateVars& vars,
                                   const std::string& where);

}  // namespace herd
