// Task: a fan-out command as its operation (data, for any Executor) plus how
// each host's replies read for people and machines, and RunTask, which runs
// one on an executor and turns every host's end into exactly one
// HostResult. The commands' tasks are in control/tasks.h.
//
// Threads: RunTask and every ReplyReader and Reporter call run on the
// thread that called RunTask.
#pragma once

#include <google/protobuf/message_lite.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/executor.h"
#include "control/host_result.h"
#include "control/reporter.h"

namespace herd::control {

using OutputFn = std::function<void(bool is_stderr, std::string_view data)>;

// Reads one host's replies. One instance per host.
class ReplyReader {
 public:
  virtual ~ReplyReader() = default;
  // A reply message of the task's method, serialised. Output for people
  // (a command's lines, audit entries) goes to `out`.
  virtual void OnMessage(const std::string& message, const OutputFn& out) = 0;
  // The call ended (well or not): the host's result. RunTask fills host,
  // address, duration and attempts, and turns interrupted calls into
  // cancelled ones.
  virtual HostResult Finish(const CallEnd& end) = 0;
};

struct Task {
  Operation op;
  // A reader for one host's replies, made when its first event arrives.
  std::function<std::unique_ptr<ReplyReader>(const Host&)> make_reader;
  // Bytes of output per host and stream kept in the result (for --fold and
  // JSON; 0 in live text mode, where lines are printed as they come).
  size_t collect_output_bytes = 0;
};

// Runs `task` on `hosts` through `executor`, reports through `reporter`
// (OnStart to OnFinish), and returns one result per host, in host order.
std::vector<HostResult> RunTask(Executor& executor, const std::vector<const Host*>& hosts,
                                const Task& task, Reporter& reporter);

// The one mapping from how a call ended to an outcome, by status code and
// by whether the agent had answered (CallEnd::messages), never by message
// text: no answer is unreachable; an answer cut by the deadline is a
// timeout, cut by the connection a failure; an error the agent sent is a
// rejection.
Outcome OutcomeFor(const CallEnd& end);

// The result of a call that ended with an error: outcome, message and
// error_code ("unavailable", "permission_denied", ...).
HostResult ErrorResult(const CallEnd& end);
// The result of a call that succeeded: its line for people, its JSON data.
HostResult OkResult(std::string summary, nlohmann::json data);
// The result of a call whose reply could not be parsed (an agent that is
// not herdd, or a broken one): rejected, "internal".
HostResult UnreadableResult(const CallEnd& end);

// The operation of a method taking one request message (`request`, the
// same for every host).
Operation MakeOperation(const char* method, CallShape shape,
                        const google::protobuf::MessageLite& request,
                        std::chrono::milliseconds timeout);

// Reads the one reply of a unary call (or a client stream) of type Reply:
// `result` turns it into the host's result, `print` (optional) shows people
// what they should see of it as it arrives. Errors become ErrorResult.
template <class Reply>
class UnaryReader final : public ReplyReader {
 public:
  using ResultFn = std::function<HostResult(const Reply&, const CallEnd&)>;
  using PrintFn = std::function<void(const Reply&, const OutputFn&)>;
  explicit UnaryReader(ResultFn result, PrintFn print = nullptr)
      : result_(std::move(result)), print_(std::move(print)) {}

  void OnMessage(const std::string& message, const OutputFn& out) override {
    parsed_ = reply_.ParseFromString(message);
    if (parsed_ && print_) print_(reply_, out);
  }
  HostResult Finish(const CallEnd& end) override {
    if (!end.status.ok()) return ErrorResult(end);
    if (!parsed_) return UnreadableResult(end);
    return result_(reply_, end);
  }

 private:
  ResultFn result_;
  PrintFn print_;
  Reply reply_;
  bool parsed_ = false;
};

// A task of one unary operation whose replies UnaryReader<Reply> reads.
template <class Reply>
Task UnaryTask(Operation op, typename UnaryReader<Reply>::ResultFn result,
               typename UnaryReader<Reply>::PrintFn print = nullptr) {
  Task t;
  t.op = std::move(op);
  t.make_reader = [result, print](const Host&) {
    return std::make_unique<UnaryReader<Reply>>(result, print);
  };
  return t;
}

}  // namespace herd::control
