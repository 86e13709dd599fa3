// The output layer: everything herd prints on stdout goes through here, for
// people (live text, folded) or machines (JSON Lines). Reporters carry
// fan-out results; RecordWriters the records of local commands (inventory,
// certificates, enrolment, the mux). All methods run on the CLI's thread;
// they write to the streams they are given and own no threads.
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "control/reporter.h"

namespace herd::control {

enum class OutputFormat { kText, kFold, kJson };

struct OutputOptions {
  OutputFormat format = OutputFormat::kText;
  bool progress = false;  // live progress line on `err` (only when it is a terminal)
  bool summary = true;    // one-line summary at the end (text and fold)
  std::FILE* out = stdout;
  std::FILE* err = stderr;
};

std::unique_ptr<Reporter> MakeReporter(const OutputOptions& opts);

// One record of a local command: its JSON object (-o json, one line) and
// its text for people (lines without the final newline).
struct Record {
  nlohmann::json json;
  std::string text;
};

class RecordWriter {
 public:
  virtual ~RecordWriter() = default;
  virtual void Write(const Record& record) = 0;
};

// Text (and fold) print the text, JSON the object.
std::unique_ptr<RecordWriter> MakeRecordWriter(const OutputOptions& opts);

// The result of one host as the JSON Lines object -o json prints, without a
// command's stdout and stderr (the reporter writes those in pieces, with
// stdout_base64/stderr_base64 beside a stream that is not valid UTF-8).
nlohmann::json HostResultJson(const HostResult& r);
// "20 hosts: 18 ok, 1 failed, 1 unreachable in 0.42 s"
std::string SummaryLine(const std::vector<HostResult>& results, std::chrono::milliseconds elapsed);

}  // namespace herd::control
