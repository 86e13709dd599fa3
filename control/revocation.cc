#include "control/revocation.h"

#include <dirent.h>
#include <fmt/format.h>
#include <unistd.h>

#include <ctime>
#include <fstream>

#include "common/file.h"
#include "common/pki.h"
#include "control/pki_store.h"
#include "herd/v1/agent.pb.h"
#include "proto/rpc/agent_methods.h"
#include "proto/rpc/identity.h"

namespace herd::control {
namespace {

std::string ListPath(const std::string& dir) { return dir + "/revocations"; }

// Whether any NAME.crt in `dir` has `serial`.
bool KnownSerial(const std::string& dir, const std::string& serial) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  bool found = false;
  while (dirent* e = ::readdir(d)) {
    const std::string f = e->d_name;
    if (found || f.size() <= 4 || f.compare(f.size() - 4, 4, ".crt") != 0) continue;
    auto pem = ReadFileToString(dir + "/" + f);
    if (!pem.ok()) continue;
    auto info = pki::InspectCert(*pem);
    found = info.ok() && info->serial == serial;
  }
  ::closedir(d);
  return found;
}

// The serial `who` names: an identity's certificate, or a serial itself.
Result<std::string> SerialOf(const std::string& dir, const std::string& who) {
  auto pem = ReadFileToString(dir + "/" + who + ".crt");
  if (pem.ok() && ValidCertName(who)) {
    auto info = pki::InspectCert(*pem);
    if (!info.ok()) return info.status();
    return info->serial;
  }
  auto serial = pki::NormaliseSerial(who);
  if (!serial.ok()) {
    return Status::NotFound("no certificate " + dir + "/" + who +
                            ".crt and not a hex serial: name an identity or give its serial");
  }
  return serial;
}

}  // namespace

Result<RevocationList> LoadRevocations(const std::string& dir) {
  auto text = ReadFileToString(ListPath(dir));
  if (!text.ok()) {
    if (::access(ListPath(dir).c_str(), F_OK) == 0) return text.status();
    // A folder from before signed lists: its serials, unsigned.
    RevocationList legacy;
    std::ifstream in(dir + "/revoked.txt");
    for (std::string line; std::getline(in, line);) {
      if (auto s = pki::NormaliseSerial(line); s.ok()) legacy.serials.insert(*s);
    }
    return legacy;
  }
  auto list = ParseRevocationList(*text, ListPath(dir));
  if (!list.ok()) return list.status();
  auto ca = ReadFileToString(dir + "/ca.crt");
  if (!ca.ok()) return Status::NotFound("no fleet CA in " + dir + " to check its revocation list");
  if (Status s = VerifyRevocationList(*list, *ca); !s.ok()) {
    return Status(s.code(), ListPath(dir) + ": " + s.message());
  }
  return list;
}

Result<Revoked> RevokeCert(const std::string& dir, const std::string& who) {
  auto serial = SerialOf(dir, who);
  if (!serial.ok()) return serial.status();
  auto current = LoadRevocations(dir);
  if (!current.ok()) return current.status();
  auto ca = LoadFleetCa(dir);
  if (!ca.ok()) return ca.status();
  Revoked r;
  r.serial = *serial;
  if (!KnownSerial(dir, r.serial)) {
    r.warnings.push_back("serial " + r.serial + " matches no certificate in " + dir +
                         " (revoked anyway)");
  }
  std::set<std::string> serials = current->serials;
  serials.insert(r.serial);
  auto list = SignRevocationList(current->version + 1, serials, std::time(nullptr), ca->key_pem);
  if (!list.ok()) return list.status();
  if (Status s = WriteFileAtomic(ListPath(dir), list->Text(), 0644); !s.ok()) return s;
  ::unlink((dir + "/revoked.txt").c_str());  // its serials are in the signed list now
  r.list = std::move(*list);
  return r;
}

Result<Revoked> RevokeForPush(const std::string& dir, const std::string& who,
                              const std::string& identity, bool push) {
  if (push) {
    auto id = rpc::LoadIdentity(dir, identity);
    if (!id.ok()) return id.status();
    auto info = pki::InspectCert(id->cert_pem);
    if (!info.ok() || !info->role || *info->role != pki::Role::kAdmin) {
      return Status(StatusCode::kPermissionDenied,
                    "pushing revocations needs an admin identity; '" + identity +
                        "' is not one (nothing was revoked)");
    }
  }
  return RevokeCert(dir, who);
}

Task RevocationsTask(const RevocationList& list, std::chrono::milliseconds timeout) {
  v1::SetRevocationsRequest req;
  req.set_signed_list(list.Text());
  return UnaryTask<v1::SetRevocationsReply>(
      MakeOperation(rpc::agent_method::kSetRevocations, CallShape::kUnary, req, timeout),
      [](const v1::SetRevocationsReply& res, const CallEnd&) {
        HostResult r;
        r.outcome = Outcome::kOk;
        r.summary = fmt::format("revocation list {} ({} serial{}); version {}",
                                res.installed() ? "updated" : "already current", res.count(),
                                res.count() == 1 ? "" : "s", res.version());
        r.data = {
            {"revoked", res.count()}, {"version", res.version()}, {"installed", res.installed()}};
        r.revocation_version = static_cast<int64_t>(res.version());
        return r;
      });
}

CatchUp PushRevocationsWhereBehind(Executor& executor, const std::vector<const Host*>& hosts,
                                   const std::vector<HostResult>& results,
                                   const RevocationList& list, std::chrono::milliseconds timeout) {
  CatchUp c;
  c.version = list.version;
  if (list.version == 0) return c;
  std::vector<const Host*> behind;
  for (size_t i = 0; i < hosts.size() && i < results.size(); ++i) {
    const int64_t v = results[i].revocation_version;
    if (v >= 0 && static_cast<uint64_t>(v) < list.version) behind.push_back(hosts[i]);
  }
  if (behind.empty()) return c;
  NullReporter quiet;
  const auto pushed = RunTask(executor, behind, RevocationsTask(list, timeout), quiet);
  for (size_t i = 0; i < behind.size(); ++i) {
    (pushed[i].outcome == Outcome::kOk ? c.updated : c.failed).push_back(behind[i]->name);
  }
  return c;
}

}  // namespace herd::control
