#include "control/output.h"

#include <fmt/format.h>

#include <map>

#include "common/hash.h"
#include "control/hostlist.h"

namespace herd::control {
namespace {

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// "host: data\n", byte for byte (a command's output may hold NUL bytes).
void Line(std::FILE* f, const std::string& host, std::string_view data) {
  std::string line;
  line.reserve(host.size() + data.size() + 3);
  line.append(host).append(": ").append(data).push_back('\n');
  std::fwrite(line.data(), 1, line.size(), f);
}

// Lines longer than this are printed in pieces of this size, each under the
// host's name: text mode holds at most this much per host and stream.
constexpr size_t kMaxLine = 64 << 10;

// The length of the longest prefix of `s` that is valid UTF-8 up to a
// complete character, starting at `from`; stops at the first invalid byte.
size_t ValidUtf8(std::string_view s, size_t from) {
  size_t i = from;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n;
  }
  return i;
}

// Writes `s` as a JSON string in pieces (no copy of the whole): control
// characters escaped, bytes that are not UTF-8 replaced by U+FFFD.
void WriteJsonString(std::FILE* f, std::string_view s) {
  std::string buf = "\"";
  size_t i = 0;
  while (i < s.size()) {
    const size_t good = ValidUtf8(s, i);
    for (; i < good; ++i) {
      const char c = s[i];
      if (c == '"' || c == '\\') {
        buf.push_back('\\');
        buf.push_back(c);
      } else if (c == '\n') {
        buf += "\\n";
      } else if (c == '\t') {
        buf += "\\t";
      } else if (c == '\r') {
        buf += "\\r";
      } else if (static_cast<unsigned char>(c) < 0x20) {
        buf += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      } else {
        buf.push_back(c);
      }
      if (buf.size() >= 64 << 10) {
        std::fwrite(buf.data(), 1, buf.size(), f);
        buf.clear();
      }
    }
    if (i < s.size()) {
      buf += "\\ufffd";
      ++i;
    }
  }
  buf.push_back('"');
  std::fwrite(buf.data(), 1, buf.size(), f);
}

// Writes `s` as a JSON string of its base64, in pieces.
void WriteJsonBase64(std::FILE* f, std::string_view s) {
  std::fputc('"', f);
  constexpr size_t kPiece = 3 * 16384;
  for (size_t at = 0; at < s.size(); at += kPiece) {
    const std::string b = Base64Encode(s.substr(at, kPiece));
    std::fwrite(b.data(), 1, b.size(), f);
  }
  std::fputc('"', f);
}

std::string FailureText(const HostResult& r) {
  switch (r.outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kCommandFailed:
      if (!r.message.empty()) return r.message;
      if (r.signal) return fmt::format("killed by signal {}", r.signal);
      return fmt::format("exit {}", r.exit_code);
    case Outcome::kTimeout:
      return r.message.empty() ? "timed out" : r.message;
    default:
      return r.message;
  }
}

// Progress on a terminal: "\r[herd] 340/1000 done, 64 running, 2 failed".
class ProgressLine {
 public:
  ProgressLine(std::FILE* err, bool enabled) : err_(err), enabled_(enabled) {}
  void Show(const Progress& p) {
    if (!enabled_) return;
    std::string line = fmt::format("[herd] {}/{} done, {} running", p.done, p.total, p.in_flight);
    if (p.tally.failed) line += fmt::format(", {} failed", p.tally.failed);
    if (p.tally.unreachable) line += fmt::format(", {} unreachable", p.tally.unreachable);
    line += fmt::format(" ({:.1f} s)", p.elapsed.count() / 1000.0);
    std::fprintf(err_, "\r\033[K%s", line.c_str());
    std::fflush(err_);
    shown_ = true;
  }
  void Clear() {
    if (!shown_) return;
    std::fprintf(err_, "\r\033[K");
    std::fflush(err_);
    shown_ = false;
  }

 private:
  std::FILE* err_;
  bool enabled_;
  bool shown_ = false;
};

class TextReporter : public Reporter {
 public:
  explicit TextReporter(const OutputOptions& o) : o_(o), progress_(o.err, o.progress) {}

  void OnOutput(const Host& host, bool is_stderr, std::string_view data) override {
    progress_.Clear();
    std::string& partial = partial_[{host.name, is_stderr}];
    // Every complete line of this chunk in one write (stderr is unbuffered).
    std::string lines;
    auto emit = [&](std::string_view text) {
      lines.append(host.name).append(": ").append(text).push_back('\n');
    };
    size_t nl;
    while ((nl = data.find('\n')) != std::string_view::npos) {
      if (partial.empty()) {
        emit(data.substr(0, nl));
      } else {
        partial.append(data.data(), nl);
        emit(partial);
        partial.clear();
      }
      data.remove_prefix(nl + 1);
    }
    partial.append(data.data(), data.size());
    while (partial.size() >= kMaxLine) {
      emit(std::string_view(partial).substr(0, kMaxLine));
      partial.erase(0, kMaxLine);
    }
    if (partial.empty()) partial.shrink_to_fit();
    std::FILE* f = is_stderr ? o_.err : o_.out;
    std::fwrite(lines.data(), 1, lines.size(), f);
    std::fflush(f);
  }

  void OnResult(const HostResult& r) override {
    progress_.Clear();
    for (bool is_err : {false, true}) {
      auto it = partial_.find({r.host, is_err});
      if (it == partial_.end()) continue;
      if (!it->second.empty()) Line(is_err ? o_.err : o_.out, r.host, it->second);
      partial_.erase(it);
    }
    if (r.output_truncated) {
      std::fprintf(o_.err, "%s: [output truncated]\n", r.host.c_str());
    }
    if (r.outcome == Outcome::kOk) {
      if (!r.summary.empty()) std::fprintf(o_.out, "%s: %s\n", r.host.c_str(), r.summary.c_str());
    } else {
      std::fprintf(o_.err, "%s: [%s] %s\n", r.host.c_str(), OutcomeName(r.outcome),
                   FailureText(r).c_str());
    }
    std::fflush(o_.out);
  }

  void OnProgress(const Progress& p) override { progress_.Show(p); }

  void OnFinish(const std::vector<HostResult>& results,
                std::chrono::milliseconds elapsed) override {
    progress_.Clear();
    if (o_.summary) std::fprintf(o_.err, "herd: %s\n", SummaryLine(results, elapsed).c_str());
  }

 protected:
  OutputOptions o_;
  ProgressLine progress_;
  std::map<std::pair<std::string, bool>, std::string> partial_;
};

// Groups hosts whose outcome and output are identical.
class FoldReporter : public Reporter {
 public:
  explicit FoldReporter(const OutputOptions& o) : o_(o), progress_(o.err, o.progress) {}

  void OnResult(const HostResult&) override {}
  void OnProgress(const Progress& p) override { progress_.Show(p); }
  bool KeepsOutput() const override { return true; }

  void OnFinish(const std::vector<HostResult>& results,
                std::chrono::milliseconds elapsed) override {
    progress_.Clear();
    // Hosts fold together when their status line and output are identical.
    struct Fold {
      std::string status;  // "" when ok, else "[outcome] reason"
      std::string out;     // stdout, or the summary of an ok host without output
      std::string err;     // stderr: printed on herd's stderr, as in text mode
      std::vector<std::string> hosts;
    };
    std::map<std::string, size_t> index;  // status + out + err -> position in folds
    std::vector<Fold> folds;
    for (const auto& r : results) {
      Fold f;
      if (r.outcome != Outcome::kOk) {
        f.status = fmt::format("[{}] {}", OutcomeName(r.outcome), FailureText(r));
      }
      f.out = r.stdout_data;
      f.err = r.stderr_data;
      if (f.out.empty() && f.err.empty() && r.outcome == Outcome::kOk) f.out = r.summary;
      auto [it, fresh] = index.emplace(f.status + '\0' + f.out + '\0' + f.err, folds.size());
      if (fresh) folds.push_back(std::move(f));
      folds[it->second].hosts.push_back(r.host);
    }
    auto body = [](std::FILE* to, const std::string& text) {
      if (text.empty()) return;
      std::fwrite(text.data(), 1, text.size(), to);  // NUL bytes included
      if (text.back() != '\n') std::fputc('\n', to);
    };
    for (const auto& f : folds) {
      std::string header = fmt::format("{} ({} host{})", FoldHosts(f.hosts), f.hosts.size(),
                                       f.hosts.size() == 1 ? "" : "s");
      if (!f.status.empty()) header += ": " + f.status;
      std::fprintf(o_.out, "==== %s ====\n", header.c_str());
      body(o_.out, f.out);
      std::fflush(o_.out);
      if (!f.err.empty()) {
        std::fprintf(o_.err, "==== %s, stderr ====\n", header.c_str());
        body(o_.err, f.err);
        std::fflush(o_.err);
      }
    }
    std::fflush(o_.out);
    if (o_.summary) std::fprintf(o_.err, "herd: %s\n", SummaryLine(results, elapsed).c_str());
  }

 private:
  OutputOptions o_;
  ProgressLine progress_;
};

class JsonReporter : public Reporter {
 public:
  explicit JsonReporter(const OutputOptions& o) : o_(o) {}

  // The object without its closing brace, then each output stream written
  // in pieces: a host's 64 MiB of output is never copied whole.
  void OnResult(const HostResult& r) override {
    std::string head = Dump(HostResultJson(r));
    head.pop_back();
    std::fwrite(head.data(), 1, head.size(), o_.out);
    if (r.command) {
      for (const auto& [name, data] :
           {std::pair<const char*, const std::string&>{"stdout", r.stdout_data},
            {"stderr", r.stderr_data}}) {
        std::fprintf(o_.out, ",\"%s\":", name);
        WriteJsonString(o_.out, data);
        // Bytes that are not UTF-8 are replaced above; here they are exact.
        if (ValidUtf8(data, 0) != data.size()) {
          std::fprintf(o_.out, ",\"%s_base64\":", name);
          WriteJsonBase64(o_.out, data);
        }
      }
    }
    std::fputs("}\n", o_.out);
    std::fflush(o_.out);
  }

  void OnFinish(const std::vector<HostResult>& results,
                std::chrono::milliseconds elapsed) override {
    Tally t = Count(results);
    nlohmann::json j = {{"type", "summary"},
                        {"total", results.size()},
                        {"ok", t.ok},
                        {"failed", t.failed},
                        {"unreachable", t.unreachable},
                        {"cancelled", t.cancelled},
                        {"elapsed_ms", elapsed.count()},
                        {"exit_code", static_cast<int>(ComputeExitCode(results))}};
    std::fprintf(o_.out, "%s\n", Dump(j).c_str());
    std::fflush(o_.out);
  }

 private:
  OutputOptions o_;
};

class TextRecords final : public RecordWriter {
 public:
  explicit TextRecords(std::FILE* out) : out_(out) {}
  void Write(const Record& r) override {
    std::fwrite(r.text.data(), 1, r.text.size(), out_);
    std::fputc('\n', out_);
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
};

class JsonRecords final : public RecordWriter {
 public:
  explicit JsonRecords(std::FILE* out) : out_(out) {}
  void Write(const Record& r) override {
    std::fprintf(out_, "%s\n", Dump(r.json).c_str());
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
};

}  // namespace

std::unique_ptr<RecordWriter> MakeRecordWriter(const OutputOptions& opts) {
  if (opts.format == OutputFormat::kJson) return std::make_unique<JsonRecords>(opts.out);
  return std::make_unique<TextRecords>(opts.out);
}

nlohmann::json HostResultJson(const HostResult& r) {
  nlohmann::json j = {{"type", "host"},
                      {"host", r.host},
                      {"address", r.address},
                      {"outcome", OutcomeName(r.outcome)},
                      {"ok", r.outcome == Outcome::kOk},
                      {"duration_ms", r.duration.count()}};
  if (r.command) {
    j["exit_code"] = r.exit_code;
    j["signal"] = r.signal;
    j["truncated"] = r.output_truncated;
  }
  if (!r.message.empty()) j["error"] = r.message;
  if (!r.error_code.empty()) j["error_code"] = r.error_code;
  if (!r.data.is_null()) j["data"] = r.data;
  return j;
}

std::string SummaryLine(const std::vector<HostResult>& results, std::chrono::milliseconds elapsed) {
  Tally t = Count(results);
  std::string s = fmt::format("{} host{}: {} ok, {} failed, {} unreachable", results.size(),
                              results.size() == 1 ? "" : "s", t.ok, t.failed, t.unreachable);
  if (t.cancelled) s += fmt::format(", {} cancelled", t.cancelled);
  s += fmt::format(" in {:.2f} s", elapsed.count() / 1000.0);
  return s;
}

std::unique_ptr<Reporter> MakeReporter(const OutputOptions& opts) {
  switch (opts.format) {
    case OutputFormat::kFold:
      return std::make_unique<FoldReporter>(opts);
    case OutputFormat::kJson:
      return std::make_unique<JsonReporter>(opts);
    case OutputFormat::kText:
      break;
  }
  return std::make_unique<TextReporter>(opts);
}

}  // namespace herd::control
