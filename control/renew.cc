#include "control/renew.h"

#include <fmt/format.h>

#include <map>

#include "common/duration.h"
#include "common/pki.h"
#include "control/task.h"
#include "herd/v1/agent.pb.h"
#include "proto/rpc/agent_methods.h"

namespace herd::control {
namespace {

namespace method = rpc::agent_method;

// Passes one round's events on as part of the whole operation: no start or
// finish of its own, progress counted over every host, and in the first
// round only the failures (the others go on to the second round).
class RoundReporter final : public Reporter {
 public:
  RoundReporter(Reporter& to, size_t total, size_t done_before, bool failures_only)
      : to_(to), total_(total), done_before_(done_before), failures_only_(failures_only) {}
  void OnResult(const HostResult& r) override {
    if (!failures_only_ || r.outcome != Outcome::kOk) to_.OnResult(r);
  }
  void OnProgress(const Progress& p) override {
    Progress all = p;
    all.total = total_;
    all.done += done_before_;
    to_.OnProgress(all);
  }
  void OnFinish(const std::vector<HostResult>&, std::chrono::milliseconds) override {}

 private:
  Reporter& to_;
  const size_t total_, done_before_;
  const bool failures_only_;
};

// What round one learns of a host: the key to certify and the nonce that
// round two must echo.
struct AgentKey {
  std::string public_key_pem, agent_nonce;
};

}  // namespace

std::vector<HostResult> RenewCertificates(Executor& executor, const std::vector<const Host*>& hosts,
                                          const FleetCa& ca, int days,
                                          std::chrono::milliseconds timeout, Reporter& reporter) {
  const auto t0 = std::chrono::steady_clock::now();
  reporter.OnStart(hosts.size());
  std::vector<HostResult> results(hosts.size());
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < hosts.size(); ++i) index[hosts[i]->name] = i;

  // Round one: every host's public key (admin renewal: no token proof; a
  // fresh nonce per host).
  Task begin;
  begin.op =
      MakeOperation(method::kBeginEnroll, CallShape::kUnary, v1::BeginEnrollRequest(), timeout);
  for (const Host* h : hosts) {
    v1::BeginEnrollRequest hello;
    hello.set_client_nonce(pki::RandomBytes(32));
    begin.op.request_for[h->name] = std::make_shared<const std::string>(hello.SerializeAsString());
  }
  std::map<std::string, AgentKey> keys;
  begin.make_reader = [&keys](const Host& h) {
    return std::make_unique<UnaryReader<v1::BeginEnrollReply>>(
        [&keys, name = h.name](const v1::BeginEnrollReply& reply, const CallEnd&) {
          keys[name] = {reply.public_key_pem(), reply.agent_nonce()};
          HostResult r;
          r.outcome = Outcome::kOk;
          return r;
        });
  };
  RoundReporter first(reporter, hosts.size(), 0, true);
  auto round_one = RunTask(executor, hosts, begin, first);

  // Round two: each host its own certificate.
  Task complete = UnaryTask<v1::CompleteEnrollReply>(
      MakeOperation(method::kCompleteEnroll, CallShape::kUnary, v1::CompleteEnrollRequest(),
                    timeout),
      [](const v1::CompleteEnrollReply& reply, const CallEnd&) {
        HostResult r;
        r.outcome = Outcome::kOk;
        r.summary =
            fmt::format("certificate renewed (serial {}, valid until {}; served within {} s)",
                        reply.serial(), UtcDate(reply.not_after_unix()), reply.reload_seconds());
        r.data = {{"serial", reply.serial()},
                  {"not_after_unix", reply.not_after_unix()},
                  {"reload_seconds", reply.reload_seconds()}};
        return r;
      });
  std::vector<const Host*> second;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (round_one[i].outcome != Outcome::kOk) {
      results[i] = std::move(round_one[i]);
      continue;
    }
    const AgentKey& key = keys[hosts[i]->name];
    auto spec = AgentCertSpec(hosts[i]->name, days);
    auto cert = spec.ok() ? pki::IssueCert(ca.cert_pem, ca.key_pem, key.public_key_pem, *spec)
                          : Result<std::string>(spec.status());
    if (!cert.ok()) {
      CallEnd failed;
      failed.status = cert.status();
      results[i] = ErrorResult(failed);
      results[i].host = hosts[i]->name;
      results[i].address = hosts[i]->address;
      results[i].attempts = 1;
      reporter.OnResult(results[i]);
      continue;
    }
    v1::CompleteEnrollRequest req;
    req.set_agent_nonce(key.agent_nonce);
    req.set_certificate_pem(*cert);
    req.set_ca_pem(ca.cert_pem);
    complete.op.request_for[hosts[i]->name] =
        std::make_shared<const std::string>(req.SerializeAsString());
    second.push_back(hosts[i]);
  }
  const size_t done_before = hosts.size() - second.size();
  RoundReporter rest(reporter, hosts.size(), done_before, false);
  auto installed = RunTask(executor, second, complete, rest);
  for (size_t j = 0; j < second.size(); ++j) {
    results[index[second[j]->name]] = std::move(installed[j]);
  }
  reporter.OnFinish(results, std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - t0));
  return results;
}

}  // namespace herd::control
