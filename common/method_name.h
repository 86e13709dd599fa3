// Method names: RPCs are authorised and routed by full name
// ("/herd.v1.Agent/Exec"); people, metrics and the audit log see the short
// one ("Exec"). Stateless.
#pragma once

#include <string_view>

namespace herd {

// "Exec" for "/herd.v1.Agent/Exec"; a name without '/' unchanged.
inline std::string_view ShortMethodName(std::string_view full_method) {
  const auto slash = full_method.rfind('/');
  return slash == std::string_view::npos ? full_method : full_method.substr(slash + 1);
}

}  // namespace herd
