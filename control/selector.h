// Target selectors: the one grammar that picks hosts from an inventory.
//
//   selector   := except
//   except     := union ( '~' union )*          A~B   hosts in A but not in B
//   union      := inter ( ',' inter )*          A,B   hosts in A or B
//   inter      := primary ( '+' primary )*      A+B   hosts in both A and B
//   primary    := '(' selector ')' | term
//   term       := 'all'                          every host
//               | '@' GROUP                      an inventory group
//               | KEY '=' VALUE | KEY '!=' VALUE label equality / inequality
//               | NAME                           host name; '*' and '?' are globs,
//                                                'node[01-05,09]' is a numeric range
// '+' binds tighter than ',', which binds tighter than '~'. Label values may
// use '*' and '?'. Spaces around operators are ignored. Errors carry the
// 0-based position of the offending character.
//
// Parse once (ParseSelector), evaluate against any inventory. Selector objects
// are immutable and thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "control/inventory.h"

namespace herd::control {

struct SelectorNode;

class Selector {
 public:
  explicit Selector(std::shared_ptr<const SelectorNode> root, std::string text)
      : root_(std::move(root)), text_(std::move(text)) {}

  // Indices of matching hosts, in inventory order. Fails on an unknown group
  // or exact host name, or a group cycle.
  Result<std::vector<size_t>> Evaluate(const Inventory& inv) const;
  const std::string& text() const { return text_; }
  const SelectorNode& root() const { return *root_; }

 private:
  std::shared_ptr<const SelectorNode> root_;
  std::string text_;
};

// Errors read: "selector 'web*,,db': position 5: expected a host, @group or
// label" followed by the selector and a caret line under the position.
Result<Selector> ParseSelector(const std::string& text);

// Parses and evaluates; an empty result is an error unless allow_empty.
Result<std::vector<const Host*>> SelectHosts(const Inventory& inv, const std::string& text,
                                             bool allow_empty);

}  // namespace herd::control
