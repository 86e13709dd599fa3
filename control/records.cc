#include "control/records.h"

#include <fmt/format.h>

#include "common/duration.h"

namespace herd::control {

Record IssuedRecord(const std::string& what, const IssuedFiles& f) {
  const std::string until = UtcDate(f.info.not_after);
  Record r;
  r.json = {{"name", f.info.common_name},
            {"key", f.key_path},
            {"cert", f.cert_path},
            {"serial", f.info.serial},
            {"not_after", until}};
  if (f.info.role) r.json["role"] = pki::RoleName(*f.info.role);
  r.text = fmt::format("{} '{}'{}, valid until {}\n  key:  {} (0600)\n  cert: {}", what,
                       f.info.common_name,
                       f.info.role ? std::string(" with role ") + pki::RoleName(*f.info.role) : "",
                       until, f.key_path, f.cert_path);
  return r;
}

Record IdentityRecord(const IdentityInfo& id, std::time_t now) {
  const std::string until = UtcDate(id.info.not_after);
  const char* role = id.info.is_ca ? "CA" : id.info.role ? pki::RoleName(*id.info.role) : "-";
  const char* state = id.revoked                             ? "revoked"
                      : id.info.not_after < now              ? "expired"
                      : id.info.not_after < now + 30 * 86400 ? "expires soon"
                                                             : "valid";
  Record r;
  r.json = {{"name", id.name},    {"role", role},   {"serial", id.info.serial},
            {"not_after", until}, {"state", state}, {"cert", id.cert_path}};
  r.text =
      fmt::format("{:<16} {:<9} {:<13} until {}  {}", id.name, role, state, until, id.info.serial);
  return r;
}

Record HostRecord(const Host& h) {
  Record r;
  r.json = {{"name", h.name}, {"address", h.address}, {"metrics", h.metrics}, {"labels", h.labels}};
  std::string labels;
  for (const auto& [k, v] : h.labels) labels += (labels.empty() ? "" : " ") + k + "=" + v;
  r.text = fmt::format("{:<16} {:<22} {}", h.name, h.address, labels);
  return r;
}

Record MuxRecord(const std::string& identity, const MuxState& state, const std::string& verb,
                 const std::string& idle) {
  Record r;
  r.json = {{"identity", identity},
            {"state", verb},
            {"running", state.pid != 0},
            {"pid", state.pid},
            {"socket", state.socket_path}};
  r.text = "mux for " + identity + ": " + verb;
  if (state.pid != 0) r.text += fmt::format(" (pid {})", state.pid);
  if (state.pid != 0 && verb != "stopped") r.text += " at " + state.socket_path;
  if (!idle.empty()) r.text += "; exits after " + idle + " without calls";
  return r;
}

}  // namespace herd::control
