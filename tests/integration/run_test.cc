// Real herdd processes on loopback driven by the real herd CLI.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/hash.h"
#include "herd/v1/agent.grpc.pb.h"
#include "tests/support/agent_stub.h"
#include "tests/support/test_support.h"

using namespace herd::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct Fleet {
  explicit Fleet(int n, const std::string& extra_hosts = "") {
    for (int i = 1; i <= n; ++i) {
      agents.push_back(std::make_unique<AgentProcess>("node" + std::to_string(i)));
      REQUIRE(agents.back()->ready());
    }
    std::vector<const AgentProcess*> ptrs;
    for (auto& a : agents) ptrs.push_back(a.get());
    inventory = WriteInventory(dir, ptrs, extra_hosts);
  }
  CliResult Herd(std::vector<std::string> args, std::chrono::milliseconds limit = 60s) {
    args.insert(args.begin(), {"-i", inventory, "--no-progress"});
    return RunHerd(args, limit);
  }
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  std::string inventory;
};

std::vector<json> JsonLines(const std::string& out) {
  std::vector<json> v;
  for (const auto& l : Lines(out)) v.push_back(json::parse(l));
  return v;
}

}  // namespace

TEST_CASE("run prints each host's output and exits 0", "[integration][run]") {
  Fleet f(3);
  auto r = f.Herd({"run", "all", "--", "echo", "hello world"});
  CHECK(r.exit_code == 0);
  for (int i = 1; i <= 3; ++i) {
    CHECK_THAT(r.out, Catch::Contains("node" + std::to_string(i) + ": hello world\n"));
  }
  CHECK_THAT(r.err, Catch::Contains("3 hosts: 3 ok, 0 failed, 0 unreachable"));
}

TEST_CASE("run --fold groups identical output under a folded host list", "[integration][run]") {
  Fleet f(3);
  auto r = f.Herd({"run", "all", "--fold", "--shell", "echo same; test $(hostname) = never"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("==== node[1-3] (3 hosts): [failed] exit 1 ====\nsame\n"));
  // stderr stays on stderr, folded the same way.
  auto e = f.Herd({"run", "all", "--fold", "--shell", "echo out; echo err >&2"});
  CHECK(e.exit_code == 0);
  CHECK(e.out == "==== node[1-3] (3 hosts) ====\nout\n");
  CHECK_THAT(e.err, Catch::Contains("==== node[1-3] (3 hosts), stderr ====\nerr\n"));
  // Output is passed on byte for byte, NUL bytes included.
  auto nul = f.Herd({"run", "node1", "--", "printf", "a\\000b\\nc\\n"});
  CHECK(nul.out == std::string("node1: a\0b\nnode1: c\n", 20));
}

TEST_CASE("run -o json prints one object per host and a summary", "[integration][run]") {
  Fleet f(2);
  auto r = f.Herd({"-o", "json", "run", "all", "--shell", "echo out; echo err >&2; exit 3"});
  CHECK(r.exit_code == 2);
  auto lines = JsonLines(r.out);
  REQUIRE(lines.size() == 3);
  for (int i = 0; i < 2; ++i) {
    CHECK(lines[i]["type"] == "host");
    CHECK(lines[i]["outcome"] == "failed");
    CHECK(lines[i]["exit_code"] == 3);
    CHECK(lines[i]["error"] == "exit 3");
    CHECK(lines[i]["error_code"] == "exit_status");
    CHECK(lines[i]["stdout"] == "out\n");
    CHECK(lines[i]["stderr"] == "err\n");
  }
  CHECK(lines[2]["type"] == "summary");
  CHECK(lines[2]["failed"] == 2);
  CHECK(lines[2]["exit_code"] == 2);
}

TEST_CASE("a command past its timeout is killed and reported, within the deadline",
          "[integration][run]") {
  Fleet f(1);
  const std::string pidfile = f.dir / "sleep.pid";
  auto r = f.Herd({"-o", "json", "-t", "2s", "run", "all", "--shell",
                   "echo $$ > " + pidfile + "; exec sleep 300"});
  CHECK(r.exit_code == 2);
  CHECK(r.elapsed < 15s);
  auto lines = JsonLines(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["outcome"] == "timeout");
  CHECK(lines[0]["error_code"] == "timeout");
  // SIGTERM comes at 80 % of a 2 s deadline, not earlier.
  CHECK(lines[0]["duration_ms"].get<int>() >= 1500);
  pid_t pid = std::stoi(ReadFile(pidfile));
  CHECK(::kill(pid, 0) != 0);  // the agent reaped it before answering
}

TEST_CASE("a missing binary is a clear per-host failure", "[integration][run]") {
  Fleet f(2);
  auto r = f.Herd({"run", "all", "--", "herd-no-such-binary", "--flag"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("node1: [failed] command not found: herd-no-such-binary"));
  CHECK_THAT(r.err, Catch::Contains("node2: [failed] command not found"));
}

TEST_CASE("a 100 MB output flood is capped and the agent stays healthy", "[integration][run]") {
  Fleet f(1);
  auto r = f.Herd({"-o", "json", "run", "all", "--max-output", "65536", "--", "head", "-c",
                   "100000000", "/dev/zero"});
  CHECK(r.exit_code == 0);
  auto lines = JsonLines(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["truncated"] == true);
  CHECK(lines[0]["stdout"].get<std::string>().size() == 65536);
  CHECK(f.Herd({"ping", "all"}).exit_code == 0);
}

TEST_CASE("a port with nothing listening is unreachable, the rest still run",
          "[integration][unreachable]") {
  Fleet f(2, "  - {name: ghost, address: '127.0.0.1:1'}\n");
  auto r = f.Herd({"-o", "json", "run", "all", "--", "true"});
  CHECK(r.exit_code == 4);
  auto lines = JsonLines(r.out);
  REQUIRE(lines.size() == 4);
  int ok = 0;
  for (auto& l : lines) {
    if (l["type"] == "host" && l["host"] == "ghost") {
      CHECK(l["outcome"] == "unreachable");
      CHECK_THAT(l["error"].get<std::string>(), Catch::Contains("connection refused"));
    } else if (l["type"] == "host") {
      ok += l["ok"] == true;
    }
  }
  CHECK(ok == 2);
  auto mixed = f.Herd({"run", "all", "--", "false"});
  CHECK(mixed.exit_code == 6);
}

TEST_CASE("a stopped agent (SIGSTOP) ends as unreachable within the deadline",
          "[integration][unreachable]") {
  Fleet f(3);
  ::kill(f.agents[1]->pid(), SIGSTOP);
  auto r = f.Herd({"-t", "2s", "ping", "all"}, 30s);
  ::kill(f.agents[1]->pid(), SIGCONT);
  CHECK(r.exit_code == 4);
  CHECK(r.elapsed < 15s);
  CHECK_THAT(r.err, Catch::Contains("node2: [unreachable]"));
  CHECK_THAT(r.out, Catch::Contains("node1: pong"));
  CHECK_THAT(r.out, Catch::Contains("node3: pong"));
}

TEST_CASE("ping, facts and health answer per host", "[integration][info]") {
  Fleet f(2);
  auto ping = f.Herd({"-o", "json", "ping", "@web"});
  CHECK(ping.exit_code == 0);
  auto lines = JsonLines(ping.out);
  REQUIRE(lines.size() == 2);  // node1 only (role=web) + summary
  CHECK(lines[0]["host"] == "node1");
  CHECK(lines[0]["data"]["agent_version"] == HERD_VERSION);
  auto facts = f.Herd({"-o", "json", "facts", "all"});
  CHECK(facts.exit_code == 0);
  auto fl = JsonLines(facts.out);
  CHECK(fl[0]["data"]["cpus"].get<int>() >= 1);
  CHECK(fl[0]["data"]["memory_total_bytes"].get<uint64_t>() > 0);
  CHECK_FALSE(fl[0]["data"]["kernel"].get<std::string>().empty());
  // Health depends on the machine (load, disk): check the structure and that
  // the exit code follows it; a deterministic failure is tested below.
  auto health = f.Herd({"-o", "json", "health", "all"});
  auto hl = JsonLines(health.out);
  REQUIRE(hl.size() == 3);
  bool all_healthy = true;
  for (int i = 0; i < 2; ++i) {
    std::set<std::string> names;
    for (const auto& c : hl[i]["data"]["checks"]) {
      names.insert(c["name"].get<std::string>());
      if (c["name"] == "state_dir") CHECK(c["ok"] == true);
    }
    CHECK(names == std::set<std::string>{"state_dir", "disk", "memory", "load"});
    all_healthy = all_healthy && hl[i]["data"]["healthy"] == true;
  }
  CHECK(health.exit_code == (all_healthy ? 0 : 2));
}

TEST_CASE("an unhealthy agent fails health with the check that failed", "[integration][info]") {
  ScopedTempDir cfg;
  WriteFile(cfg / "agent.yaml", "health:\n  max_load_per_cpu: -1\n");
  AgentProcess agent("sick", {"--config", cfg / "agent.yaml"});
  REQUIRE(agent.ready());
  auto inv = WriteInventory(cfg, {&agent});
  auto r = RunHerd({"-i", inv, "health", "all"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("sick: [failed] unhealthy: load: load5"));
}

TEST_CASE("herd's own errors exit 1 and name the problem", "[integration][cli]") {
  Fleet f(1);
  auto sel = f.Herd({"ping", "@nope"});
  CHECK(sel.exit_code == 1);
  CHECK_THAT(sel.err, Catch::Contains("unknown group 'nope'"));
  auto empty = f.Herd({"ping", "role=cache"});
  CHECK(empty.exit_code == 1);
  CHECK_THAT(empty.err, Catch::Contains("matches no host"));
  auto allowed = f.Herd({"--allow-empty", "ping", "role=cache"});
  CHECK(allowed.exit_code == 0);
  auto missing = RunHerd({"-i", f.dir / "nope.yaml", "ping", "all"});
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.err, Catch::Contains("nope.yaml"));
  WriteFile(f.dir / "bad.yaml", "hosts:\n  - name: a\n    address: 'x y'\n");
  auto bad = RunHerd({"-i", f.dir / "bad.yaml", "ping", "all"});
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.err, Catch::Contains("bad.yaml:3:14"));
  auto env = RunHerd({"inventory", "all"}, 10s, {{"HERD_INVENTORY", f.inventory}});
  CHECK(env.exit_code == 0);
  CHECK_THAT(env.out, Catch::Contains("node1"));
  CHECK(RunHerd({"--help"}).exit_code == 0);
  CHECK(RunHerd({"run", "--help"}).out.find("--shell") != std::string::npos);
}

TEST_CASE("SIGTERM stops the agent and the commands it started", "[integration][agent]") {
  Fleet f(1);
  const std::string pidfile = f.dir / "sleep.pid";
  std::thread cli([&] {
    f.Herd({"run", "all", "--shell", "echo $$ > " + pidfile + "; exec sleep 300"}, 60s);
  });
  REQUIRE(WaitFor([&] { return ReadFile(pidfile).size() > 1; }, 20s));
  pid_t pid = std::stoi(ReadFile(pidfile));
  int status = f.agents[0]->Stop();
  cli.join();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(WaitFor([&] { return ::kill(pid, 0) != 0; }, 10s));
}

TEST_CASE("kill -9 of herdd leaves no command running, and the CLI says the agent went away",
          "[integration][agent]") {
  Fleet f(1);
  const std::string pids = f.dir / "pids";
  CliResult r;
  // A shell with a child of its own: the whole group must go.
  std::thread cli([&] {
    r = f.Herd({"run", "all", "--shell", "sleep 300 & echo $$ $! > " + pids + "; wait"}, 60s);
  });
  REQUIRE(WaitFor([&] { return ReadFile(pids).find(' ') != std::string::npos; }, 20s));
  std::istringstream in(ReadFile(pids));
  pid_t shell = 0, sleeper = 0;
  in >> shell >> sleeper;
  REQUIRE(shell > 0);
  REQUIRE(sleeper > 0);
  REQUIRE(::kill(f.agents[0]->pid(), SIGKILL) == 0);
  cli.join();
  CHECK(r.exit_code == 4);
  CHECK_THAT(r.err, Catch::Contains("node1: [unreachable] the connection to the agent broke"));
  CHECK_THAT(r.err, !Catch::Contains("--plaintext"));
  CHECK(WaitFor([&] { return ::kill(shell, 0) != 0 && ::kill(sleeper, 0) != 0; }, 10s));
}

TEST_CASE("SIGTERM stops the agent cleanly while an upload stalls and a reader lags",
          "[integration][agent]") {
  ScopedTempDir dir;
  AgentProcess agent("stall", {"--plaintext"});
  grpc::ChannelArguments args;
  // A small receive window that does not grow: the agent's writes to a
  // caller that stops reading stall instead of filling a large window.
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 10);
  auto stub = herd::v1::Agent::NewStub(
      grpc::CreateCustomChannel(agent.grpc_address(), grpc::InsecureChannelCredentials(), args));
  const auto deadline = std::chrono::system_clock::now() + 60s;

  // An upload that sends its header and one chunk, then nothing.
  grpc::ClientContext up_ctx;
  up_ctx.set_deadline(deadline);
  herd::v1::PutFileReply up_reply;
  auto up = stub->PutFile(&up_ctx, &up_reply);
  herd::v1::PutFileMessage msg;
  auto* h = msg.mutable_header();
  h->set_path(dir / "stalled");
  h->set_size(1 << 20);
  h->set_mode(0644);
  h->set_sha256(std::string(64, '0'));
  REQUIRE(up->Write(msg));
  msg.Clear();
  msg.set_chunk(std::string(1000, 'x'));
  REQUIRE(up->Write(msg));

  // A command flooding 8 MiB of output to a caller that reads one event.
  grpc::ClientContext ex_ctx;
  ex_ctx.set_deadline(deadline);
  herd::v1::ExecRequest req;
  req.add_argv("yes");
  req.set_max_output_bytes(8 << 20);
  auto reader = stub->Exec(&ex_ctx, req);
  herd::v1::ExecEvent ev;
  REQUIRE(reader->Read(&ev));
  CHECK(ev.has_out());

  // The shutdown cancels both calls (after its 2 s grace): herdd exits 0.
  const int status = agent.Stop();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  up_ctx.TryCancel();
  ex_ctx.TryCancel();
  CHECK_FALSE(up->Finish().ok());
  CHECK_FALSE(reader->Finish().ok());
  // Nothing of the upload is left: no file, no temporary.
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("Ctrl-C cancels the run, stops the commands and exits 130", "[integration][run]") {
  Fleet f(2);
  const std::string pids = f.dir / "pids";
  // SIGINT as a terminal would deliver it, once both commands run (polled,
  // at most 30 s); the shell's exit code is herd's.
  const std::string script =
      "\"$0\" -i \"$1\" --no-progress run all --shell \"echo \\$\\$ >> $2; exec sleep 300\" & "
      "p=$!; "
      "i=0; while [ $i -lt 300 ] && [ \"$(cat \"$2\" 2>/dev/null | wc -l)\" -lt 2 ]; do "
      "sleep 0.1; i=$((i+1)); done; kill -INT $p; wait $p";
  auto r = RunProgram("sh", {"-c", script, HerdBinary(), f.inventory, pids}, 60s);
  CHECK(r.exit_code == 130);
  CHECK_THAT(r.err, Catch::Contains("2 cancelled"));
  CHECK_THAT(r.err, Catch::Contains("[cancelled] interrupted: the call was cancelled"));
  auto lines = Lines(ReadFile(pids));
  REQUIRE(lines.size() == 2);
  for (const auto& l : lines) {
    pid_t pid = std::stoi(l);
    CHECK(WaitFor([&] { return ::kill(pid, 0) != 0; }, 10s));
  }
}

TEST_CASE("the progress line appears on a terminal and never in a pipe", "[integration][run]") {
  Fleet f(2);
  std::string cmd = HerdBinary() + " -i " + f.inventory + " run all --shell 'sleep 1'";
  // script(1) gives herd a pseudo-terminal as stderr.
  auto tty = RunProgram("script", {"-qec", cmd, "/dev/null"}, 60s);
  CHECK(tty.exit_code == 0);
  CHECK_THAT(tty.out, Catch::Contains("[herd] 0/2 done, 2 running"));
  auto pipe = RunHerd({"-i", f.inventory, "run", "all", "--shell", "sleep 1"});
  CHECK(pipe.exit_code == 0);
  CHECK(pipe.err.find("[herd]") == std::string::npos);
  CHECK(pipe.err.find('\r') == std::string::npos);
}

TEST_CASE("run flags keep to their own values", "[integration][cli]") {
  Fleet f(1);
  auto r = f.Herd({"run", "all", "-e", "GREETING=hi", "--", "sh", "-c", "echo $GREETING", "-q"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("node1: hi"));
  CHECK_THAT(r.err, Catch::Contains("1 host: 1 ok"));  // -q went to sh, not to herd
  auto empty = f.Herd({"run", "", "--", "true"});
  CHECK(empty.exit_code == 1);
  CHECK_THAT(empty.err, Catch::Contains("TARGET is empty"));
  auto deep = f.Herd({"ping", std::string(100, '(') + "node1" + std::string(100, ')')});
  CHECK(deep.exit_code == 1);
  CHECK_THAT(deep.err, Catch::Contains("nested deeper than 32"));
  auto longsel = f.Herd({"ping", std::string(10000, 'a')});
  CHECK(longsel.exit_code == 1);
  CHECK_THAT(longsel.err, Catch::Contains("the limit is 4096"));
  // Command-line mistakes get herd's prefix and say what was meant.
  auto unknown = f.Herd({"pong", "all"});
  CHECK(unknown.exit_code == 1);
  CHECK_THAT(unknown.err, Catch::StartsWith("herd: error: unknown command 'pong'; commands: ping"));
  auto two_env = f.Herd({"run", "all", "-e", "A=1", "B=2", "--", "true"});
  CHECK(two_env.exit_code == 1);
  CHECK_THAT(two_env.err, Catch::Contains("one KEY=VALUE per -e"));
  auto help = f.Herd({"help"});
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("Usage: herd"));
}

namespace {

// Exec through a raw stub; the final status, and the result if one came.
grpc::Status RawExec(herd::v1::Agent::Stub& stub, const herd::v1::ExecRequest& req,
                     herd::v1::ExecResult* result) {
  auto ctx = CallContext();
  auto reader = stub.Exec(ctx.get(), req);
  herd::v1::ExecEvent ev;
  while (reader->Read(&ev)) {
    if (ev.has_result()) *result = ev.result();
  }
  return reader->Finish();
}

grpc::Status RawPut(herd::v1::Agent::Stub& stub, const std::string& path, const std::string& data,
                    const std::string& sha256) {
  auto ctx = CallContext();
  herd::v1::PutFileReply reply;
  auto up = stub.PutFile(ctx.get(), &reply);
  herd::v1::PutFileMessage msg;
  msg.mutable_header()->set_path(path);
  msg.mutable_header()->set_mode(0644);
  msg.mutable_header()->set_size(data.size());
  msg.mutable_header()->set_sha256(sha256);
  up->Write(msg);
  msg.set_chunk(data);
  up->Write(msg);
  up->WritesDone();
  return up->Finish();
}

}  // namespace

TEST_CASE("hostile requests get client errors: NUL bytes, bad names, huge values",
          "[integration][security]") {
  Fleet f(1);
  auto stub = AgentStub(*f.agents[0]);
  herd::v1::ExecResult result;
  auto exec = [&](const std::function<void(herd::v1::ExecRequest&)>& fill) {
    herd::v1::ExecRequest req;
    fill(req);
    return RawExec(*stub, req, &result);
  };
  const std::string nul("a\0b", 3);
  for (const auto& fill : std::vector<std::function<void(herd::v1::ExecRequest&)>>{
           [&](auto& r) { r.add_argv("echo"), r.add_argv(nul); },
           [&](auto& r) { r.set_shell("echo " + nul); },
           [&](auto& r) { r.add_argv("true"), (*r.mutable_env())["A"] = nul; },
           [&](auto& r) { r.add_argv("true"), (*r.mutable_env())["K=x"] = "y"; },
           [&](auto& r) { r.add_argv("true"), r.set_working_dir("/tmp" + nul); },
           [&](auto& r) { r.add_argv(std::string(200'000, 'a')); },
       }) {
    const auto st = exec(fill);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(st.error_message().size() < 1100);
  }
  CHECK_THAT(
      exec([&](auto& r) { r.add_argv("true"), (*r.mutable_env())["K=x"] = "y"; }).error_message(),
      Catch::Contains("'K=x' is not a portable name"));

  // A command that cannot start: no exit status, the error says why, bounded.
  REQUIRE(exec([&](auto& r) { r.add_argv(std::string(100'000, 'a')); }).ok());
  CHECK(result.exit_code() == -1);
  CHECK_THAT(result.error(), Catch::Contains("… (100000 bytes): File name too long"));
  CHECK(result.error().size() < 300);

  // Files: a NUL in the path never writes a shorter one, an over-long name is
  // the caller's mistake, and a digest in upper case is a digest.
  const std::string dir = f.dir.path();
  const std::string data = "content";
  std::string upper = herd::Sha256Hex(data);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto nul_path = RawPut(*stub, dir + "/x" + std::string("\0suffix", 7), data, upper);
  CHECK(nul_path.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_FALSE(std::filesystem::exists(dir + "/x"));
  auto long_name = RawPut(*stub, dir + "/" + std::string(300, 'n'), data, upper);
  CHECK(long_name.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto huge = RawPut(*stub, "/" + std::string(100'000, 'p'), data, upper);
  CHECK(huge.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(huge.error_message().size() < 1100);
  CHECK(RawPut(*stub, dir + "/upper", data, upper).ok());
  CHECK(ReadFile(dir + "/upper") == data);
  // The agent is fine after all that.
  CHECK(f.Herd({"ping", "all"}).exit_code == 0);
}

namespace {

// VmRSS of `pid` in bytes (0 when gone).
size_t RssBytes(pid_t pid) {
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6)) * 1024;
  }
  return 0;
}

// Whether a process whose command line starts with `prefix` sleeps on a pipe.
bool BlockedOnPipe(const std::string& prefix) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    if (ReadFile(e.path().string() + "/cmdline").rfind(prefix, 0) == 0 &&
        ReadFile(e.path().string() + "/wchan").find("pipe") != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("a client that stops reading leaves the agent's memory bounded",
          "[integration][security]") {
  Fleet f(1);
  auto stub = AgentStub(*f.agents[0]);
  const pid_t agent = f.agents[0]->pid();
  const size_t before = RssBytes(agent);
  herd::v1::ExecRequest req;
  req.add_argv("head");
  req.add_argv("-c");
  req.add_argv("300000000");  // 300 MB
  req.add_argv("/dev/zero");
  req.set_max_output_bytes(64 << 20);
  auto ctx = CallContext(60s);
  auto reader = stub->Exec(ctx.get(), req);
  herd::v1::ExecEvent ev;
  REQUIRE(reader->Read(&ev));  // one chunk, then nothing more is read
  // The command stalls on its full pipe instead of the agent buffering it.
  REQUIRE(WaitFor(
      [] {
        return BlockedOnPipe(
            std::string("head\0-c\0"
                        "300000000",
                        18));
      },
      30s));
  const size_t during = RssBytes(agent);
  INFO("agent RSS before " << before << ", while stalled " << during);
#if !defined(__SANITIZE_ADDRESS__)  // ASan holds freed memory in quarantine
  CHECK(during < before + (16 << 20));
#endif
  ctx->TryCancel();
  reader->Finish();
  CHECK(WaitFor(
      [] {
        return !BlockedOnPipe(
            std::string("head\0-c\0"
                        "300000000",
                        18));
      },
      10s));
  CHECK(f.Herd({"ping", "all"}).exit_code == 0);
}

namespace {

// An upload that has sent its header and `sent` bytes of `data`, and waits.
struct HeldUpload {
  HeldUpload(herd::v1::Agent::Stub& stub, const std::string& path, const std::string& data,
             size_t sent)
      : ctx(CallContext(60s)), up(stub.PutFile(ctx.get(), &reply)) {
    herd::v1::PutFileMessage msg;
    msg.mutable_header()->set_path(path);
    msg.mutable_header()->set_mode(0644);
    msg.mutable_header()->set_size(data.size());
    msg.mutable_header()->set_sha256(herd::Sha256Hex(data));
    up->Write(msg);
    msg.set_chunk(data.substr(0, sent));
    up->Write(msg);
  }
  ~HeldUpload() {
    ctx->TryCancel();
    up->Finish();
  }
  std::unique_ptr<grpc::ClientContext> ctx;
  herd::v1::PutFileReply reply;
  std::unique_ptr<grpc::ClientWriter<herd::v1::PutFileMessage>> up;
};

// Sizes of the upload temporaries in `dir`.
std::vector<uintmax_t> Temporaries(const std::string& dir) {
  std::vector<uintmax_t> sizes;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(".herd-put-", 0) == 0) sizes.push_back(e.file_size());
  }
  return sizes;
}

}  // namespace

TEST_CASE("uploads are capped, on record when they start, never committed when cancelled",
          "[integration][security]") {
  ScopedTempDir dir;
  const std::string files = dir / "files", state = dir / "state", config = dir / "agent.yaml";
  std::filesystem::create_directory(files);
  WriteFile(config, "files:\n  max_concurrent: 2\nexec:\n  run_as: root\n");
  const std::vector<std::string> args = {"--config", config, "--state-dir", state};
  auto agent = std::make_unique<AgentProcess>("uploads", args);
  REQUIRE(agent->ready());
  auto stub = AgentStub(*agent);
  const std::string data(100'000, 'd');

  // Every byte sent, size and checksum right, then the caller cancels: the
  // agent must not take the end of the stream for the end of the upload.
  {
    HeldUpload all(*stub, files + "/cancelled", data, data.size());
    REQUIRE(WaitFor(
        [&] {
          auto t = Temporaries(files);
          return t.size() == 1 && t[0] == data.size();
        },
        20s));
    CHECK(agent->AuditHas("PutFile", "started"));
    all.ctx->TryCancel();
    REQUIRE(WaitFor([&] { return Temporaries(files).empty(); }, 20s));
  }
  CHECK_FALSE(std::filesystem::exists(files + "/cancelled"));
  CHECK(WaitFor([&] { return agent->AuditHas("PutFile", "cancelled by the caller"); }, 10s));

  // Two uploads held open fill the cap: a third is refused, and recorded.
  auto first = std::make_unique<HeldUpload>(*stub, files + "/a", data, 10);
  auto second = std::make_unique<HeldUpload>(*stub, files + "/b", data, 10);
  REQUIRE(WaitFor([&] { return Temporaries(files).size() == 2; }, 20s));
  auto ctx = CallContext();
  herd::v1::PutFileReply reply;
  auto third = stub->PutFile(ctx.get(), &reply);
  const auto refused = third->Finish();
  CHECK(refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(refused.error_message(), Catch::Contains("too many uploads at once (2)"));
  CHECK(agent->AuditHas("PutFile", "refused: too many uploads at once"));

  // kill -9 mid-upload: the temporaries stay until the next start removes them.
  REQUIRE(::kill(agent->pid(), SIGKILL) == 0);
  first.reset();
  second.reset();
  CHECK(Temporaries(files).size() == 2);
  agent.reset();
  AgentProcess again("uploads", args);
  REQUIRE(again.ready());
  CHECK(Temporaries(files).empty());
  CHECK_THAT(again.log(), Catch::Contains("removed 2 temporary file(s)"));
  // A freed slot takes an upload again.
  CHECK(RawPut(*AgentStub(again), files + "/c", data, herd::Sha256Hex(data)).ok());
}

TEST_CASE("run forwards herd's stdin when it is not a terminal, bounded", "[integration][run]") {
  Fleet f(2);
  const std::string herd = HerdBinary() + " -i " + f.inventory + " --no-progress -q";
  auto piped = RunProgram("/bin/sh", {"-c", "echo hi | " + herd + " run all -- cat"}, 60s);
  CHECK(piped.exit_code == 0);
  CHECK_THAT(piped.out, Catch::Contains("node1: hi") && Catch::Contains("node2: hi"));
  auto ignored = RunProgram("/bin/sh", {"-c", "echo hi | " + herd + " run -n all -- cat"}, 60s);
  CHECK(ignored.exit_code == 0);
  CHECK(ignored.out.empty());
  auto too_much = RunProgram(
      "/bin/sh", {"-c", "head -c 2000000 /dev/zero | " + herd + " run all -- wc -c"}, 60s);
  CHECK(too_much.exit_code == 1);
  CHECK_THAT(too_much.err, Catch::Contains("stdin is more than 1048576 bytes"));
}

TEST_CASE("the CLI's memory stays bounded whatever the hosts print", "[integration][run]") {
  Fleet f(4);
  // Output goes to /dev/null, so that this process holds none of it: a
  // child's peak RSS counts what it shared with its parent before exec.
  auto peak_kb = [&](const std::string& args) {
    auto r = RunProgram("/bin/sh",
                        {"-c", "exec " + HerdBinary() + " -i " + f.inventory +
                                   " --no-progress -q " + args + " >/dev/null"},
                        120s);
    CHECK(r.exit_code == 0);
    return r.max_rss_kb;
  };
  // 4 hosts x 64 MiB without a newline, in text mode: a line's worth held
  // per host at a time (lines are cut at 64 KiB).
  const long text = peak_kb("run all --max-output 67108864 -- head -c 67108864 /dev/zero");
  // JSON keeps at most --max-output per host (16 MiB here), not copies of it.
  const long json =
      peak_kb("-o json run all --max-output 16777216 -- head -c 67108864 /dev/urandom");
  INFO("herd peak RSS: text " << text << " KiB, json " << json << " KiB");
#if !defined(__SANITIZE_ADDRESS__)  // ASan holds freed memory in quarantine
  CHECK(text < 64 * 1024);
  CHECK(json < (4 * 16 + 48) * 1024);
#endif
  // What JSON says of bytes that are not UTF-8: exactly what was sent.
  auto small = f.Herd({"-o", "json", "run", "node1", "--max-output", "100000", "--", "head", "-c",
                       "300000", "/dev/urandom"});
  CHECK(small.exit_code == 0);
  const auto first = json::parse(Lines(small.out).at(0));
  CHECK(first["truncated"] == true);
  REQUIRE(first.contains("stdout_base64"));
  CHECK(herd::Base64Decode(first["stdout_base64"].get<std::string>())->size() == 100000);
}

TEST_CASE("a client that vanishes mid-command is found by keepalive and its command ends",
          "[integration][agent]") {
  ScopedTempDir dir;
  const std::string config = dir / "agent.yaml";
  WriteFile(config, "exec:\n  run_as: root\ngrpc:\n  keepalive: 1s\n  keepalive_timeout: 1s\n");
  AgentProcess agent("node1", {"--config", config});
  REQUIRE(agent.ready());
  const std::string inventory = WriteInventory(dir, {&agent});
  const std::string herd_pid = dir / "herd.pid", cmd_pid = dir / "cmd.pid";
  // A CLI that is stopped (SIGSTOP) keeps its connection open but answers
  // nothing, as a laptop that went to sleep would.
  CliResult r;
  std::thread cli([&] {
    r = RunProgram(
        "/bin/sh",
        {"-c", "echo $$ > " + herd_pid + "; exec " + HerdBinary() + " -i " + inventory +
                   " --no-progress run all --shell 'echo $$ > " + cmd_pid + "; exec sleep 60'"},
        90s);
  });
  REQUIRE(
      WaitFor([&] { return ReadFile(cmd_pid).size() > 1 && ReadFile(herd_pid).size() > 1; }, 20s));
  const pid_t herd = std::stoi(ReadFile(herd_pid));
  const pid_t command = std::stoi(ReadFile(cmd_pid));
  REQUIRE(::kill(herd, SIGSTOP) == 0);
  // Ping every second, answer within one: the call ends within a few seconds,
  // not at the command's 60 s.
  const bool ended = WaitFor([&] { return ::kill(command, 0) != 0; }, 20s);
  ::kill(herd, SIGKILL);
  cli.join();
  CHECK(ended);
  // On record as killed (SIGTERM when the call was cancelled).
  CHECK(WaitFor([&] { return agent.AuditHas("Exec", "signal="); }, 10s));
}
