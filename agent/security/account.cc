#include "agent/security/account.h"

#include <grp.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "common/text.h"

namespace herd::agent {
namespace {

Account FromPasswd(const passwd& pw) {
  Account a;
  a.name = pw.pw_name;
  a.home = pw.pw_dir ? pw.pw_dir : "/";
  a.uid = pw.pw_uid;
  a.gid = pw.pw_gid;
  int n = 32;
  for (int tries = 0; tries < 4; ++tries) {
    a.groups.assign(static_cast<size_t>(n), 0);
    if (::getgrouplist(pw.pw_name, pw.pw_gid, a.groups.data(), &n) >= 0) break;
  }
  a.groups.resize(static_cast<size_t>(std::max(n, 0)));
  if (a.groups.empty()) a.groups.push_back(pw.pw_gid);
  a.is_agent = pw.pw_uid == ::geteuid();
  return a;
}

}  // namespace

Result<Account> LookupAccount(const std::string& name) {
  passwd pw{}, *found = nullptr;
  std::vector<char> buf(16384);
  const int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) {
    return Status::Internal("cannot look up account " + name + ": " + std::strerror(rc));
  }
  if (!found) return Status::NotFound("no account named " + name + " on this device");
  return FromPasswd(pw);
}

Account AgentAccount() {
  passwd pw{}, *found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found) {
    return FromPasswd(pw);
  }
  Account a;
  a.name = std::to_string(::geteuid());
  a.home = "/";
  a.uid = ::geteuid();
  a.gid = ::getegid();
  a.groups = {a.gid};
  return a;
}

namespace {

// A decimal id that fits, or nullopt.
std::optional<unsigned long> Number(const std::string& text) {
  if (text.empty() || text.size() > 10 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const unsigned long v = std::stoul(text);
  if (v >= 0xffffffffUL) return std::nullopt;
  return v;
}

}  // namespace

Result<uid_t> LookupUid(const std::string& user) {
  if (auto n = Number(user)) return static_cast<uid_t>(*n);
  auto a = LookupAccount(user);
  if (!a.ok()) return Status::Invalid("owner: no user named " + Excerpt(user) + " on this device");
  return a->uid;
}

Result<gid_t> LookupGid(const std::string& name) {
  if (auto n = Number(name)) return static_cast<gid_t>(*n);
  struct group gr {};
  struct group* found = nullptr;
  std::vector<char> buf(16384);
  if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found) {
    return Status::Invalid("group: no group named " + Excerpt(name) + " on this device");
  }
  return found->gr_gid;
}

ScopedFsIdentity::ScopedFsIdentity(const Account& account) {
  if (account.is_agent) return;
  uid_ = static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1)));
  gid_ = static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1)));
  const int n = ::getgroups(0, nullptr);
  groups_.resize(static_cast<size_t>(std::max(n, 0)));
  if (n > 0) ::getgroups(n, groups_.data());
  ::syscall(SYS_setgroups, account.groups.size(), account.groups.data());
  ::setfsgid(account.gid);
  ::setfsuid(account.uid);
  switched_ = true;
}

ScopedFsIdentity::~ScopedFsIdentity() {
  if (!switched_) return;
  ::setfsuid(uid_);
  ::setfsgid(gid_);
  ::syscall(SYS_setgroups, groups_.size(), groups_.data());
}

}  // namespace herd::agent
