// The records local commands print (control/output.h): one per issued
// certificate, listed identity, inventory host and mux state, each as a
// JSON object with stable field names and a text line for people.
// Stateless functions.
#pragma once

#include <ctime>
#include <string>

#include "control/inventory.h"
#include "control/mux.h"
#include "control/output.h"
#include "control/pki_store.h"

namespace herd::control {

// `what`: "created fleet CA", "issued certificate for", ...
Record IssuedRecord(const std::string& what, const IssuedFiles& f);
// One line of `herd cert list`; `now` decides "expires soon" and "expired".
Record IdentityRecord(const IdentityInfo& id, std::time_t now);
// One host of `herd inventory`.
Record HostRecord(const Host& h);
// `herd mux start|stop|status` for `identity`; `verb` is what happened:
// "running", "already running", "stopped", "not running".
Record MuxRecord(const std::string& identity, const MuxState& state, const std::string& verb,
                 const std::string& idle = "");

}  // namespace herd::control
