#include "control/tasks.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "common/duration.h"
#include "common/hash.h"

namespace herd::control {
namespace {

HostResult ErrorResult(const Status& s) {
  HostResult r;
  r.outcome = OutcomeForError(s);
  r.message = s.message();
  if (r.message.rfind("answered: ", 0) == 0) r.message = r.message.substr(10);
  r.error_code = StatusCodeName(s.code());
  // gRPC's connection errors are long and repetitive; say what happened.
  if (r.outcome != Outcome::kUnreachable) return r;
  if (s.code() == StatusCode::kDeadlineExceeded) {
    r.message = "no answer before the deadline (--timeout)";
    return r;
  }
  static const std::pair<const char*, const char*> kPlainWords[] = {
      {"Connection refused", "connection refused (is herdd running there?)"},
      {"certificate verify failed",
       "TLS: the agent's certificate is not from this fleet's CA (not enrolled yet? see herd "
       "enroll)"},
      {"wrong version number",
       "TLS handshake failed: the agent serves plain text (herd --plaintext)"},
      {"is not in peer certificate",
       "TLS: the agent's certificate is for another name (the inventory name must be the name "
       "it was enrolled with)"},
      {"Socket closed",
       "the agent closed the connection during set-up (herd --plaintext to an agent that serves "
       "TLS?)"},
  };
  for (const auto& [grpc_words, plain] : kPlainWords) {
    if (r.message.find(grpc_words) != std::string::npos) {
      r.message = plain;
      break;
    }
  }
  return r;
}

std::string Bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string Uptime(int64_t s) { return FormatDuration(std::chrono::seconds(s)); }

nlohmann::json Labels(const google::protobuf::Map<std::string, std::string>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

}  // namespace

Outcome OutcomeForError(const Status& s) {
  const bool answered = s.message().rfind("answered: ", 0) == 0;
  switch (s.code()) {
    case StatusCode::kOk:
      return Outcome::kOk;
    case StatusCode::kUnavailable:
      return answered ? Outcome::kCommandFailed : Outcome::kUnreachable;
    case StatusCode::kDeadlineExceeded:
      return answered ? Outcome::kTimeout : Outcome::kUnreachable;
    default:
      return Outcome::kRejected;
  }
}

uint32_t AgentTimeoutMs(std::chrono::milliseconds host_timeout) {
  auto ms = host_timeout.count();
  auto margin = std::min<long long>(1000, ms / 20);
  return static_cast<uint32_t>(std::max<long long>(1, ms - margin));
}

HostTask PingTask() {
  return [](const Host&, AgentClient& c, const CallOptions& o, std::shared_ptr<HostSink> sink) {
    auto t0 = std::chrono::steady_clock::now();
    c.Info(o, [sink, t0](Result<v1::InfoReply> res) {
      if (!res.ok()) return sink->Finish(ErrorResult(res.status()));
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      HostResult r;
      r.outcome = Outcome::kOk;
      r.summary = fmt::format("pong {:.1f} ms (herdd {}, up {})", us / 1000.0, res->agent_version(),
                              Uptime(res->uptime_seconds()));
      r.data = {{"hostname", res->hostname()},
                {"agent_version", res->agent_version()},
                {"uptime_seconds", res->uptime_seconds()},
                {"rtt_ms", us / 1000.0},
                {"labels", Labels(res->labels())}};
      sink->Finish(std::move(r));
    });
  };
}

HostTask FactsTask() {
  return [](const Host&, AgentClient& c, const CallOptions& o, std::shared_ptr<HostSink> sink) {
    c.Facts(o, [sink](Result<v1::FactsReply> res) {
      if (!res.ok()) return sink->Finish(ErrorResult(res.status()));
      const auto& f = *res;
      HostResult r;
      r.outcome = Outcome::kOk;
      r.summary =
          fmt::format("{}, kernel {}, {}, {} CPU, mem {} free of {}, disk {} free of {}, up {}",
                      f.os(), f.kernel(), f.arch(), f.cpus(), Bytes(f.memory_available_bytes()),
                      Bytes(f.memory_total_bytes()), Bytes(f.disk_available_bytes()),
                      Bytes(f.disk_total_bytes()), Uptime(f.uptime_seconds()));
      std::map<std::string, std::string> labels(f.labels().begin(), f.labels().end());
      for (const auto& [k, v] : labels) r.summary += fmt::format(", {}={}", k, v);
      r.data = {{"hostname", f.hostname()},
                {"os", f.os()},
                {"kernel", f.kernel()},
                {"arch", f.arch()},
                {"cpus", f.cpus()},
                {"memory_total_bytes", f.memory_total_bytes()},
                {"memory_available_bytes", f.memory_available_bytes()},
                {"disk_total_bytes", f.disk_total_bytes()},
                {"disk_available_bytes", f.disk_available_bytes()},
                {"uptime_seconds", f.uptime_seconds()},
                {"load1", f.load1()},
                {"agent_version", f.agent_version()},
                {"labels", Labels(f.labels())}};
      sink->Finish(std::move(r));
    });
  };
}

HostTask HealthTask() {
  return [](const Host&, AgentClient& c, const CallOptions& o, std::shared_ptr<HostSink> sink) {
    c.Health(o, [sink](Result<v1::HealthReply> res) {
      if (!res.ok()) return sink->Finish(ErrorResult(res.status()));
      HostResult r;
      r.outcome = res->ok() ? Outcome::kOk : Outcome::kCommandFailed;
      nlohmann::json checks = nlohmann::json::array();
      std::string bad;
      for (const auto& c : res->checks()) {
        checks.push_back({{"name", c.name()}, {"ok", c.ok()}, {"detail", c.detail()}});
        if (!c.ok()) bad += (bad.empty() ? "" : "; ") + c.name() + ": " + c.detail();
      }
      r.data = {{"healthy", res->ok()}, {"checks", checks}};
      if (res->ok()) {
        r.summary = fmt::format("healthy ({} checks)", res->checks_size());
      } else {
        r.message = "unhealthy: " + bad;
        r.error_code = "unhealthy";
      }
      sink->Finish(std::move(r));
    });
  };
}

HostTask ExecTask(v1::ExecRequest request) {
  auto req = std::make_shared<const v1::ExecRequest>(std::move(request));
  return [req](const Host&, AgentClient& c, const CallOptions& o, std::shared_ptr<HostSink> sink) {
    c.Exec(
        *req, o,
        [sink](const v1::ExecEvent& ev) {
          if (ev.has_out()) sink->Output(false, ev.out());
          if (ev.has_err()) sink->Output(true, ev.err());
        },
        [sink](Result<v1::ExecResult> res) {
          if (!res.ok()) {
            HostResult r = ErrorResult(res.status());
            r.command = true;
            r.exit_code = -1;
            return sink->Finish(std::move(r));
          }
          const auto& e = *res;
          HostResult r;
          r.command = true;
          r.exit_code = e.exit_code();
          r.signal = e.signal();
          r.output_truncated = e.output_truncated();
          r.data = {{"duration_ms", e.duration_ms()}};
          if (!e.error().empty()) {
            r.outcome = Outcome::kCommandFailed;
            r.message = e.error();
            r.error_code = "exec_failed";
          } else if (e.timed_out()) {
            r.outcome = Outcome::kTimeout;
            r.message =
                fmt::format("timed out after {:.1f} s: killed before the --timeout deadline",
                            e.duration_ms() / 1000.0);
            r.error_code = "timeout";
          } else if (e.exit_code() == 0 && e.signal() == 0) {
            r.outcome = Outcome::kOk;
          } else {
            r.outcome = Outcome::kCommandFailed;
            r.message = e.signal() ? fmt::format("killed by signal {}", e.signal())
                                   : fmt::format("exit {}", e.exit_code());
            r.error_code = e.signal() ? "signal" : "exit_status";
          }
          sink->Finish(std::move(r));
        });
  };
}

Result<CopySource> ReadCopySource(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::NotFound(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return Status::Invalid(path + " is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  // One buffer, read in place and shared by every host's upload.
  auto content = std::make_shared<std::string>(static_cast<size_t>(st.st_size), '\0');
  if (!in.read(content->data(), static_cast<std::streamsize>(content->size()))) {
    return Status::Internal(fmt::format("cannot read {}: short read", path));
  }
  CopySource src;
  src.sha256 = Sha256Hex(*content);
  src.content = std::move(content);
  src.mode = st.st_mode & 07777;
  return src;
}

HostTask CopyTask(CopySource source, std::string dest_path) {
  v1::PutFileHeader header;
  header.set_path(dest_path);
  header.set_mode(source.mode);
  header.set_size(source.content->size());
  header.set_sha256(source.sha256);
  auto content = source.content;
  return [header, content](const Host&, AgentClient& c, const CallOptions& o,
                           std::shared_ptr<HostSink> sink) {
    c.PutFile(header, content, o, [sink, header](Result<v1::PutFileReply> res) {
      if (!res.ok()) return sink->Finish(ErrorResult(res.status()));
      HostResult r;
      r.outcome = Outcome::kOk;
      r.summary = fmt::format("wrote {} ({} bytes, sha256 {}…)", header.path(),
                              res->bytes_written(), res->sha256().substr(0, 12));
      r.data = {{"path", header.path()},
                {"bytes", res->bytes_written()},
                {"sha256", res->sha256()},
                {"mode", fmt::format("{:04o}", header.mode())}};
      sink->Finish(std::move(r));
    });
  };
}

namespace {

// One audit entry for people: "2026-11-25 05:43:06Z admin (admin) Exec
// argv[0]=sh args=2: ok exit=0"; the raw line when it is not an entry.
std::string AuditLine(const nlohmann::json& e, const std::string& raw) {
  if (!e.is_object() || !e.contains("ts") || !e["ts"].is_number()) return raw;
  const std::string when = UtcTime(static_cast<std::time_t>(e["ts"].get<double>()));
  auto str = [&](const char* k) {
    return e.contains(k) && e[k].is_string() ? e[k].get<std::string>() : std::string();
  };
  std::string line = fmt::format("{} {} ({}) {}", when, str("caller"), str("role"), str("method"));
  if (!str("args").empty()) line += " " + str("args");
  return line + ": " + str("result");
}

}  // namespace

HostTask AuditTask(int64_t since_unix, uint32_t limit) {
  v1::ReadAuditRequest req;
  req.set_since_unix(since_unix);
  req.set_limit(limit);
  return [req](const Host&, AgentClient& c, const CallOptions& o, std::shared_ptr<HostSink> sink) {
    c.ReadAudit(req, o, [sink](Result<v1::ReadAuditReply> res) {
      if (!res.ok()) return sink->Finish(ErrorResult(res.status()));
      HostResult r;
      r.outcome = Outcome::kOk;
      nlohmann::json entries = nlohmann::json::array();
      for (const auto& e : res->entries()) {
        entries.push_back(nlohmann::json::parse(e, nullptr, false));
        sink->Output(false, AuditLine(entries.back(), e) + "\n");
      }
      r.data = {{"entries", entries}};
      if (res->entries_size() == 0) r.summary = "no audit entries";
      sink->Finish(std::move(r));
    });
  };
}

HostTask RevocationsTask(std::vector<std::string> serials) {
  v1::SetRevocationsRequest req;
  for (auto& s : serials) req.add_serials(std::move(s));
  return [req](const Host&, AgentClient& c, const CallOptions& o, std::shared_ptr<HostSink> sink) {
    c.SetRevocations(req, o, [sink](Result<v1::SetRevocationsReply> res) {
      if (!res.ok()) return sink->Finish(ErrorResult(res.status()));
      HostResult r;
      r.outcome = Outcome::kOk;
      r.summary = fmt::format("revocation list updated ({} serial{})", res->count(),
                              res->count() == 1 ? "" : "s");
      r.data = {{"revoked", res->count()}};
      sink->Finish(std::move(r));
    });
  };
}

HostTask RenewTask(FleetCa ca, int days) {
  auto fleet = std::make_shared<const FleetCa>(std::move(ca));
  return [fleet, days](const Host& host, AgentClient& c, const CallOptions& o,
                       std::shared_ptr<HostSink> sink) {
    auto spec = AgentCertSpec(host.name, days);
    if (!spec.ok()) return sink->Finish(ErrorResult(spec.status()));
    v1::BeginEnrollRequest hello;
    hello.set_client_nonce(pki::RandomBytes(32));
    c.BeginEnroll(hello, o, [fleet, spec = *spec, &c, o, sink](Result<v1::BeginEnrollReply> res) {
      if (!res.ok()) return sink->Finish(ErrorResult(res.status()));
      auto cert = pki::IssueCert(fleet->cert_pem, fleet->key_pem, res->public_key_pem(), spec);
      if (!cert.ok()) return sink->Finish(ErrorResult(cert.status()));
      v1::CompleteEnrollRequest req;
      req.set_agent_nonce(res->agent_nonce());
      req.set_certificate_pem(*cert);
      req.set_ca_pem(fleet->cert_pem);
      c.CompleteEnroll(req, o, [sink](Result<v1::CompleteEnrollReply> done) {
        if (!done.ok()) return sink->Finish(ErrorResult(done.status()));
        HostResult r;
        r.outcome = Outcome::kOk;
        const std::string until = UtcDate(done->not_after_unix());
        r.summary =
            fmt::format("certificate renewed (serial {}, valid until {}; served within {} s)",
                        done->serial(), until, done->reload_seconds());
        r.data = {{"serial", done->serial()},
                  {"not_after_unix", done->not_after_unix()},
                  {"reload_seconds", done->reload_seconds()}};
        sink->Finish(std::move(r));
      });
    });
  };
}

}  // namespace herd::control
