// Reporters: how fan-out results reach people (live text, folded) and machines
// (JSON Lines). All methods run on the engine thread; reporters write to the
// streams they are given and own no threads.
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "control/fanout.h"

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

// The result of one host as the JSON Lines object -o json prints.
nlohmann::json HostResultJson(const HostResult& r);
// "20 hosts: 18 ok, 1 failed, 1 unreachable in 0.42 s"
std::string SummaryLine(const std::vector<HostResult>& results, std::chrono::milliseconds elapsed);

}  // namespace herd::control
