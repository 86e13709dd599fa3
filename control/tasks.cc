#include "control/tasks.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>

#include "common/duration.h"
#include "common/hash.h"
#include "common/key_value.h"
#include "herd/v1/agent.pb.h"
#include "herd/v1/app.pb.h"
#include "proto/rpc/agent_methods.h"

namespace herd::control {

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

namespace {

namespace method = rpc::agent_method;

std::string Uptime(int64_t s) { return FormatDuration(std::chrono::seconds(s)); }

nlohmann::json Labels(const google::protobuf::Map<std::string, std::string>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

// Exec: output events as they come, then the result event.
class ExecReader final : public ReplyReader {
 public:
  void OnMessage(const std::string& message, const OutputFn& out) override {
    v1::ExecEvent ev;
    if (!ev.ParseFromString(message)) {
      unreadable_ = true;
      return;
    }
    if (ev.has_out()) out(false, ev.out());
    if (ev.has_err()) out(true, ev.err());
    if (ev.has_result()) {
      result_ = ev.result();
      have_result_ = true;
    }
  }

  HostResult Finish(const CallEnd& end) override {
    HostResult r;
    if (!end.status.ok() || unreadable_ || !have_result_) {
      CallEnd bad = end;
      if (end.status.ok() && !unreadable_) {
        bad.status = Status::Internal("agent ended Exec without a result");
      }
      r = unreadable_ && end.status.ok() ? UnreadableResult(end) : ErrorResult(bad);
      r.command = true;
      r.exit_code = -1;
      return r;
    }
    const auto& e = result_;
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
      r.message = fmt::format("timed out after {:.1f} s: killed before the --timeout deadline",
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
    return r;
  }

 private:
  v1::ExecResult result_;
  bool have_result_ = false, unreadable_ = false;
};

// An upload's chunks from byte `from` on, read from the file as each write
// is due.
class ChunkSource final : public StreamSource {
 public:
  static constexpr size_t kChunk = 256 * 1024;
  ChunkSource(CopySource source, uint64_t from) : source_(std::move(source)), from_(from) {}
  bool Message(size_t index, std::string* out) const override {
    const uint64_t offset = from_ + static_cast<uint64_t>(index) * kChunk;
    if (offset >= source_.size) return false;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, source_.size - offset));
    v1::PutFileMessage msg;
    std::string* chunk = msg.mutable_chunk();
    chunk->resize(want);
    size_t got = 0;
    while (got < want) {
      const ssize_t n = ::pread(source_.fd->get(), chunk->data() + got, want - got,
                                static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;  // shrank or unreadable: the agent finds the upload short
      got += static_cast<size_t>(n);
    }
    return msg.SerializeToString(out);
  }

 private:
  CopySource source_;
  uint64_t from_;
};

}  // namespace

std::shared_ptr<const StreamSource> FileChunks(CopySource source, uint64_t from) {
  return std::make_shared<ChunkSource>(std::move(source), from);
}

uint32_t AgentTimeoutMs(std::chrono::milliseconds host_timeout) {
  auto ms = host_timeout.count();
  auto margin = std::min<long long>(1000, ms / 20);
  return static_cast<uint32_t>(std::max<long long>(1, ms - margin));
}

Task PingTask(std::chrono::milliseconds timeout) {
  return UnaryTask<v1::InfoReply>(
      MakeOperation(method::kInfo, CallShape::kUnary, v1::InfoRequest(), timeout),
      [](const v1::InfoReply& res, const CallEnd& end) {
        const double rtt_ms = end.elapsed.count() / 1000.0;
        return OkResult(fmt::format("pong {:.1f} ms (herdd {}, up {})", rtt_ms, res.agent_version(),
                                    Uptime(res.uptime_seconds())),
                        {{"hostname", res.hostname()},
                         {"agent_version", res.agent_version()},
                         {"uptime_seconds", res.uptime_seconds()},
                         {"rtt_ms", rtt_ms},
                         {"labels", Labels(res.labels())},
                         {"revocation_version", res.revocation_version()}});
      });
}

Task FactsTask(std::chrono::milliseconds timeout) {
  return UnaryTask<v1::FactsReply>(
      MakeOperation(method::kFacts, CallShape::kUnary, v1::FactsRequest(), timeout),
      [](const v1::FactsReply& f, const CallEnd&) {
        std::string summary =
            fmt::format("{}, kernel {}, {}, {} CPU, mem {} free of {}, disk {} free of {}, up {}",
                        f.os(), f.kernel(), f.arch(), f.cpus(), Bytes(f.memory_available_bytes()),
                        Bytes(f.memory_total_bytes()), Bytes(f.disk_available_bytes()),
                        Bytes(f.disk_total_bytes()), Uptime(f.uptime_seconds()));
        std::map<std::string, std::string> labels(f.labels().begin(), f.labels().end());
        for (const auto& [k, v] : labels) summary += fmt::format(", {}={}", k, v);
        return OkResult(std::move(summary), {{"hostname", f.hostname()},
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
                                             {"labels", Labels(f.labels())}});
      });
}

Task HealthTask(std::chrono::milliseconds timeout) {
  return UnaryTask<v1::HealthReply>(
      MakeOperation(method::kHealth, CallShape::kUnary, v1::HealthRequest(), timeout),
      [](const v1::HealthReply& res, const CallEnd&) {
        HostResult r;
        r.outcome = res.ok() ? Outcome::kOk : Outcome::kCommandFailed;
        nlohmann::json checks = nlohmann::json::array();
        std::string bad;
        for (const auto& c : res.checks()) {
          checks.push_back({{"name", c.name()}, {"ok", c.ok()}, {"detail", c.detail()}});
          if (!c.ok()) bad += (bad.empty() ? "" : "; ") + c.name() + ": " + c.detail();
        }
        r.data = {{"healthy", res.ok()}, {"checks", checks}};
        if (res.ok()) {
          r.summary = fmt::format("healthy ({} checks)", res.checks_size());
        } else {
          r.message = "unhealthy: " + bad;
          r.error_code = "unhealthy";
        }
        return r;
      });
}

Result<Task> ExecTask(const CommandSpec& spec) {
  if (spec.argv.empty() == spec.shell.empty()) {
    return Status::Invalid("run needs either a command after -- or --shell 'pipeline' (not both)");
  }
  v1::ExecRequest req;
  for (const auto& a : spec.argv) req.add_argv(a);
  req.set_shell(spec.shell);
  for (const auto& text : spec.env) {
    auto kv = ParseKeyValue(text);
    if (!kv.ok()) return Status::Invalid("--env " + kv.status().message());
    (*req.mutable_env())[kv->first] = kv->second;
  }
  req.set_working_dir(spec.cwd);
  req.set_timeout_ms(AgentTimeoutMs(spec.timeout));
  if (spec.max_output < 1 || spec.max_output > (64u << 20)) {
    return Status::Invalid("--max-output must be between 1 and 67108864 bytes (64 MiB)");
  }
  req.set_max_output_bytes(spec.max_output);
  req.set_root(spec.root);
  if (spec.stdin_data.size() > kMaxStdin) {
    return Status::Invalid(
        fmt::format("stdin is more than {} bytes: copy it with herd copy and "
                    "let the command read the file",
                    kMaxStdin));
  }
  req.set_stdin_data(spec.stdin_data);
  Task t;
  t.op = MakeOperation(method::kExec, CallShape::kServerStream, req, spec.timeout);
  t.make_reader = [](const Host&) { return std::make_unique<ExecReader>(); };
  t.collect_output_bytes = spec.max_output;
  return t;
}

Result<CopySource> ReadCopySource(const std::string& path) {
  auto fd = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd->valid() || ::fstat(fd->get(), &st) != 0) {
    return Status::NotFound(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return Status::Invalid(path + " is not a regular file");
  Sha256 hash;
  std::string buf(1 << 20, '\0');
  uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(fd->get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return Status::Internal(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    if (n == 0) break;
    hash.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    total += static_cast<uint64_t>(n);
  }
  if (total != static_cast<uint64_t>(st.st_size)) {
    return Status(StatusCode::kFailedPrecondition, path + " changed while it was read");
  }
  CopySource src;
  src.fd = std::move(fd);
  src.size = total;
  src.sha256 = hash.HexDigest();
  src.mode = st.st_mode & 07777;
  return src;
}

Result<Task> CopyTask(const CopySpec& spec) {
  if (spec.dest.empty() || spec.dest[0] != '/') {
    return Status::Invalid("copy: DST must be an absolute path");
  }
  auto source = ReadCopySource(spec.src);
  if (!source.ok()) return source.status();
  v1::PutFileMessage first;
  v1::PutFileHeader& header = *first.mutable_header();
  header.set_mode(source->mode & 0777);  // a new file's, unless --mode
  if (!spec.mode.empty()) {
    char* end = nullptr;
    const unsigned long m = std::strtoul(spec.mode.c_str(), &end, 8);
    if (*end || m > 07777 || spec.mode.find_first_not_of("01234567") != std::string::npos) {
      return Status::Invalid("--mode expects octal permission bits, e.g. 0644");
    }
    header.set_mode(static_cast<uint32_t>(m));
    header.set_set_mode(true);
  }
  header.set_path(spec.dest);
  header.set_size(source->size);
  header.set_sha256(source->sha256);
  header.set_owner(spec.owner);
  header.set_group(spec.group);
  header.set_root(spec.root);
  header.set_allow_setid(spec.allow_setid);
  Operation op = MakeOperation(method::kPutFile, CallShape::kClientStream, first, spec.timeout);
  op.call.stream = FileChunks(std::move(*source));
  return UnaryTask<v1::PutFileReply>(
      std::move(op), [header](const v1::PutFileReply& res, const CallEnd&) {
        return OkResult(fmt::format("wrote {} ({} bytes, sha256 {}…)", header.path(),
                                    res.bytes_written(), res.sha256().substr(0, 12)),
                        {{"path", header.path()},
                         {"bytes", res.bytes_written()},
                         {"sha256", res.sha256()},
                         {"mode", fmt::format("{:04o}", res.mode())},
                         {"uid", res.uid()},
                         {"gid", res.gid()}});
      });
}

}  // namespace herd::control
