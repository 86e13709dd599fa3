// The reporters as a script or a person reads them, written to memory.
#include "control/output.h"

#include <stdio.h>

#include <catch2/catch.hpp>

#include "common/hash.h"
#include "tests/support/test_support.h"

using namespace herd::control;

namespace {

// A FILE* that collects what is written to it.
struct MemoryFile {
  MemoryFile() : f(open_memstream(&buf, &size)) {}
  ~MemoryFile() {
    std::fclose(f);
    std::free(buf);
  }
  std::string Text() {
    std::fflush(f);
    return std::string(buf, size);
  }
  char* buf = nullptr;
  size_t size = 0;
  std::FILE* f;
};

HostResult CommandResult(std::string out, std::string err) {
  HostResult r;
  r.host = "node01";
  r.address = "127.0.0.1:1";
  r.command = true;
  r.outcome = Outcome::kOk;
  r.stdout_data = std::move(out);
  r.stderr_data = std::move(err);
  return r;
}

}  // namespace

TEST_CASE("JSON output says when a stream is not UTF-8 and gives it losslessly",
          "[control][output]") {
  MemoryFile out;
  OutputOptions o;
  o.format = OutputFormat::kJson;
  o.out = out.f;
  auto reporter = MakeReporter(o);
  const std::string binary("out\xff\x00\xc3(\n", 8);
  const std::string text = "tab\there \"quoted\" back\\slash \xc3\xa9t\xc3\xa9\n\x01";
  reporter->OnResult(CommandResult(binary, text));
  const auto lines = herd::testing::Lines(out.Text());
  REQUIRE(lines.size() == 1);
  const auto j = nlohmann::json::parse(lines[0]);
  CHECK(j["host"] == "node01");
  CHECK(j["stdout"] == "out\xef\xbf\xbd" + std::string(1, '\0') + "\xef\xbf\xbd(\n");
  REQUIRE(j.contains("stdout_base64"));
  CHECK(herd::Base64Decode(j["stdout_base64"].get<std::string>()) == binary);
  CHECK(j["stderr"] == text);
  CHECK_FALSE(j.contains("stderr_base64"));
  // Overlong encodings and surrogates are not UTF-8 either.
  for (const std::string bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    MemoryFile f;
    o.out = f.f;
    MakeReporter(o)->OnResult(CommandResult(bad, ""));
    CHECK(nlohmann::json::parse(herd::testing::Lines(f.Text()).at(0)).contains("stdout_base64"));
  }
}

TEST_CASE("text output holds at most a line's worth per host and cuts endless lines",
          "[control][output]") {
  MemoryFile out, err;
  OutputOptions o;
  o.out = out.f;
  o.err = err.f;
  o.summary = false;
  auto reporter = MakeReporter(o);
  Host h;
  h.name = "node01";
  // 200 KiB without a newline, in 10 KiB chunks, then the end of the line.
  for (int i = 0; i < 20; ++i) reporter->OnOutput(h, false, std::string(10 << 10, 'a'));
  reporter->OnOutput(h, false, "b\nnext line\nrest");
  reporter->OnOutput(h, true, "err\n");
  reporter->OnResult(CommandResult("", ""));
  const auto lines = herd::testing::Lines(out.Text());
  REQUIRE(lines.size() == 6);
  const std::string prefix = "node01: ";
  for (int i = 0; i < 3; ++i) CHECK(lines[i] == prefix + std::string(64 << 10, 'a'));
  CHECK(lines[3] == prefix + std::string((200 - 192) << 10, 'a') + "b");
  CHECK(lines[4] == "node01: next line");
  CHECK(lines[5] == "node01: rest");
  CHECK(err.Text() == "node01: err\n");
}
