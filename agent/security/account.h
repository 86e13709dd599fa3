// Account: a user the agent acts as on the owner's behalf. Commands run as
// the account the agent config names (exec.run_as); uploads are written with
// its file-system identity. Root only when the caller asks and the config
// allows it (exec.allow_root).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace herd::agent {

struct Account {
  std::string name, home;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, the primary one included
  bool is_agent = true;       // the agent's own identity: nothing to switch

  bool is_root() const { return uid == 0; }
};

// The account named `name` in the system's user database, or kNotFound.
Result<Account> LookupAccount(const std::string& name);

// The identity the agent runs with.
Account AgentAccount();

// A user or group given by name or number ("www-data", "33"), or
// kInvalidArgument naming it.
Result<uid_t> LookupUid(const std::string& user);
Result<gid_t> LookupGid(const std::string& name);

// Switches the calling thread's file-system identity (fsuid, fsgid and
// supplementary groups) to `account` for the guard's lifetime, so opening,
// creating and renaming files are checked as that user would be. Only this
// thread changes (raw system calls, not glibc's process-wide ones). Does
// nothing for the agent's own account.
class ScopedFsIdentity {
 public:
  explicit ScopedFsIdentity(const Account& account);
  ~ScopedFsIdentity();
  ScopedFsIdentity(const ScopedFsIdentity&) = delete;
  ScopedFsIdentity& operator=(const ScopedFsIdentity&) = delete;

 private:
  bool switched_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::vector<gid_t> groups_;
};

}  // namespace herd::agent
