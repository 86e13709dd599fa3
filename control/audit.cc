#include "control/audit.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/duration.h"
#include "common/hash.h"
#include "herd/v1/agent.pb.h"
#include "proto/rpc/agent_methods.h"

namespace herd::control {
namespace {

// Bytes a terminal would act on, written as \xNN.
std::string Escaped(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::vector<std::string> Lines(const v1::ReadAuditReply& reply) {
  return {reply.entries().begin(), reply.entries().end()};
}

}  // namespace

std::string AuditLine(const std::string& raw) {
  const auto e = nlohmann::json::parse(raw, nullptr, false);
  if (!e.is_object() || !e.contains("ts") || !e["ts"].is_number()) return Escaped(raw);
  const std::string when = UtcTime(static_cast<std::time_t>(e["ts"].get<double>()));
  auto str = [&](const char* k) {
    return e.contains(k) && e[k].is_string() ? e[k].get<std::string>() : std::string();
  };
  std::string line = fmt::format("{} {} ({}) {}", when, str("caller"), str("role"), str("method"));
  if (!str("args").empty()) line += " " + str("args");
  return Escaped(line + ": " + str("result"));
}

Task AuditTask(int64_t since_unix, uint32_t limit, std::chrono::milliseconds timeout) {
  v1::ReadAuditRequest req;
  req.set_since_unix(since_unix);
  req.set_limit(limit);
  Task t = UnaryTask<v1::ReadAuditReply>(
      MakeOperation(rpc::agent_method::kReadAudit, CallShape::kUnary, req, timeout),
      [](const v1::ReadAuditReply& res, const CallEnd&) {
        nlohmann::json entries = nlohmann::json::array();
        for (const auto& e : res.entries()) {
          entries.push_back(nlohmann::json::parse(e, nullptr, false));
        }
        HostResult r;
        r.outcome = Outcome::kOk;
        if (res.entries_size() == 0) r.summary = "no audit entries";
        r.data = {{"entries", entries}};
        return r;
      },
      [](const v1::ReadAuditReply& res, const OutputFn& out) {
        for (const auto& e : res.entries()) out(false, AuditLine(e) + "\n");
      });
  t.collect_output_bytes = 16 << 20;
  return t;
}

ChainReport VerifyAuditChain(const std::vector<std::string>& lines) {
  ChainReport r;
  std::string prev_hash;
  uint64_t prev_seq = 0;
  for (const auto& line : lines) {
    const auto e = nlohmann::json::parse(line, nullptr, false);
    if (!e.is_object() || !e.contains("seq") || !e["seq"].is_number_unsigned()) continue;
    const uint64_t seq = e["seq"].get<uint64_t>();
    const std::string prev =
        e.contains("prev") && e["prev"].is_string() ? e["prev"].get<std::string>() : "";
    const std::string hash = Sha256Hex(line);
    if (r.entries == 0) {
      r.first_seq = seq;
      if (seq == 1 && prev != std::string(64, '0')) {
        r.problems.push_back("seq 1: the first entry does not start a chain");
      }
    } else if (seq <= prev_seq) {
      r.problems.push_back(
          fmt::format("seq {} after seq {}: entries reordered or repeated", seq, prev_seq));
    } else if (seq != prev_seq + 1) {
      r.problems.push_back(fmt::format("seq {} after seq {}: {} entries removed", seq, prev_seq,
                                       seq - prev_seq - 1));
    } else if (prev != prev_hash) {
      r.problems.push_back(fmt::format(
          "seq {}: the entry before it (seq {}) was changed after it was written", seq, prev_seq));
    }
    prev_seq = seq;
    prev_hash = hash;
    r.last_seq = seq;
    r.head = hash;
    ++r.entries;
  }
  r.intact = r.problems.empty();
  return r;
}

Task AuditVerifyTask(std::chrono::milliseconds timeout) {
  v1::ReadAuditRequest req;
  req.set_since_unix(0);
  req.set_limit(10'000'000);  // everything the agent keeps (a few MB)
  return UnaryTask<v1::ReadAuditReply>(
      MakeOperation(rpc::agent_method::kReadAudit, CallShape::kUnary, req, timeout),
      [](const v1::ReadAuditReply& res, const CallEnd&) {
        const ChainReport c = VerifyAuditChain(Lines(res));
        HostResult r;
        r.data = {{"intact", c.intact},     {"entries", c.entries}, {"first_seq", c.first_seq},
                  {"last_seq", c.last_seq}, {"head", c.head},       {"problems", c.problems}};
        if (c.intact) {
          r.outcome = Outcome::kOk;
          r.summary = c.entries == 0
                          ? "audit chain: no chained entries yet"
                          : fmt::format("audit chain intact: {} entries, seq {}-{}, head {}",
                                        c.entries, c.first_seq, c.last_seq, c.head);
        } else {
          r.outcome = Outcome::kCommandFailed;
          r.error_code = "audit_chain_broken";
          r.message =
              "audit chain broken: " + c.problems.front() +
              (c.problems.size() > 1 ? fmt::format(" (and {} more)", c.problems.size() - 1) : "") +
              "; head " + c.head;
        }
        return r;
      });
}

}  // namespace herd::control
