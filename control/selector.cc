#include "control/selector.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

#include "control/hostlist.h"

namespace herd::control {

struct SelectorNode {
  enum Kind { kAll, kGroup, kLabelEq, kLabelNe, kName, kUnion, kInter, kExcept } kind;
  std::string a, b;                    // group name / label key+value / name pattern
  std::optional<HostPattern> pattern;  // kName; label value (kLabelEq, kLabelNe)
  bool exact = false;                  // kName without wildcards or ranges
  size_t pos = 0;                      // position in the selector text, for errors
  std::shared_ptr<const SelectorNode> lhs, rhs;
};

namespace {

using NodePtr = std::shared_ptr<const SelectorNode>;

Status PositionError(const std::string& text, size_t pos, const std::string& msg) {
  std::string caret(pos, ' ');
  caret += '^';
  return Status::Invalid("selector '" + text + "': position " + std::to_string(pos) + ": " + msg +
                         "\n  " + text + "\n  " + caret);
}

bool IsOperator(char c) { return c == ',' || c == '+' || c == '~' || c == '(' || c == ')'; }

bool NameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
         c == '*' || c == '?' || c == '[' || c == ']' || c == ',';
}

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  Result<NodePtr> Parse() {
    auto node = ParseExcept();
    if (!node.ok()) return node;
    SkipSpace();
    if (pos_ < text_.size()) {
      if (text_[pos_] == ')') return PositionError(text_, pos_, "unmatched ')'");
      return PositionError(text_, pos_, std::string("unexpected '") + text_[pos_] + "'");
    }
    return node;
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool Accept(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  Result<NodePtr> Binary(SelectorNode::Kind kind, char op, Result<NodePtr> (Parser::*next)()) {
    auto lhs = (this->*next)();
    if (!lhs.ok()) return lhs;
    NodePtr node = *lhs;
    while (true) {
      SkipSpace();
      size_t at = pos_;
      if (!Accept(op)) break;
      auto rhs = (this->*next)();
      if (!rhs.ok()) return rhs;
      auto n = std::make_shared<SelectorNode>();
      n->kind = kind;
      n->pos = at;
      n->lhs = node;
      n->rhs = *rhs;
      node = n;
    }
    return node;
  }
  Result<NodePtr> ParseExcept() { return Binary(SelectorNode::kExcept, '~', &Parser::ParseUnion); }
  Result<NodePtr> ParseUnion() { return Binary(SelectorNode::kUnion, ',', &Parser::ParseInter); }
  Result<NodePtr> ParseInter() { return Binary(SelectorNode::kInter, '+', &Parser::ParsePrimary); }

  Result<NodePtr> ParsePrimary() {
    SkipSpace();
    if (pos_ >= text_.size()) {
      return PositionError(text_, pos_, "expected a host name, @group or label at end of selector");
    }
    size_t start = pos_;
    if (Accept('(')) {
      if (++depth_ > kMaxDepth) {
        return PositionError(text_, start,
                             "parentheses nested deeper than " + std::to_string(kMaxDepth));
      }
      auto inner = ParseExcept();
      --depth_;
      if (!inner.ok()) return inner;
      if (!Accept(')')) return PositionError(text_, start, "unclosed '('");
      return inner;
    }
    return ParseTerm();
  }

  // Reads the longest run up to an operator outside brackets.
  Result<NodePtr> ParseTerm() {
    size_t start = pos_;
    int depth = 0;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '[') ++depth;
      if (c == ']') --depth;
      if (depth == 0 && (IsOperator(c) || std::isspace(static_cast<unsigned char>(c)))) break;
      ++pos_;
    }
    std::string term = text_.substr(start, pos_ - start);
    if (term.empty()) {
      return PositionError(
          text_, start,
          std::string("expected a host name, @group or label before '") + text_[start] + "'");
    }
    // A '~' right before '=' reads as the unknown operator '~=', not "except".
    if (term[0] == '=' && start > 0 && text_[start - 1] == '~') {
      return PositionError(text_, start - 1,
                           "unknown label operator '~=' (use '=' or '!=', globs in values)");
    }
    auto node = std::make_shared<SelectorNode>();
    node->pos = start;
    if (term == "all") {
      node->kind = SelectorNode::kAll;
      return NodePtr(node);
    }
    if (term[0] == '@') {
      std::string g = term.substr(1);
      for (size_t i = 0; i < g.size(); ++i) {
        char c = g[i];
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
          return PositionError(text_, start + 1 + i, "invalid character in group name");
        }
      }
      if (g.empty()) return PositionError(text_, start, "'@' needs a group name");
      node->kind = SelectorNode::kGroup;
      node->a = g;
      return NodePtr(node);
    }
    // Label operators: anything with = ! < > is a label expression.
    size_t op = term.find_first_of("=!<>");
    if (op == 0 && term[0] == '!') {
      return PositionError(text_, start, "'!' is not an operator here; exclude hosts with A~B");
    }
    if (op != std::string::npos) {
      std::string key = term.substr(0, op);
      std::string rest = term.substr(op);
      std::string value;
      if (rest.rfind("!=", 0) == 0) {
        node->kind = SelectorNode::kLabelNe;
        value = rest.substr(2);
      } else if (rest[0] == '=' && (rest.size() < 2 || (rest[1] != '=' && rest[1] != '~'))) {
        node->kind = SelectorNode::kLabelEq;
        value = rest.substr(1);
      } else {
        size_t len = 1;
        while (len < rest.size() && std::string("=!<>~").find(rest[len]) != std::string::npos) {
          ++len;
        }
        return PositionError(
            text_, start + op,
            "unknown label operator '" + rest.substr(0, len) + "' (use key=value or key!=value)");
      }
      if (key.empty()) return PositionError(text_, start, "label expression without a key");
      for (size_t i = 0; i < key.size(); ++i) {
        char c = key[i];
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
            c != '/') {
          return PositionError(text_, start + i, "invalid character in label key");
        }
      }
      size_t vpos = start + op + (node->kind == SelectorNode::kLabelNe ? 2 : 1);
      for (size_t i = 0; i < value.size(); ++i) {
        if (std::string("=!<>[]").find(value[i]) != std::string::npos) {
          return PositionError(text_, vpos + i, "invalid character in label value");
        }
      }
      auto pattern = HostPattern::Parse(value);  // '*' and '?' only: '[' is refused above
      if (!pattern.ok()) return PositionError(text_, vpos, pattern.status().message());
      node->a = key;
      node->b = value;
      node->pattern = std::move(*pattern);
      return NodePtr(node);
    }
    for (size_t i = 0; i < term.size(); ++i) {
      if (!NameChar(term[i])) {
        const unsigned char c = static_cast<unsigned char>(term[i]);
        std::string shown = std::isprint(c) ? std::string(1, term[i]) : fmt::format("\\x{:02x}", c);
        return PositionError(text_, start + i, "unexpected character '" + shown + "' in host name");
      }
    }
    auto pattern = HostPattern::Parse(term);
    if (!pattern.ok()) return PositionError(text_, start, pattern.status().message());
    node->kind = SelectorNode::kName;
    node->a = term;
    node->pattern = std::move(*pattern);
    node->exact = term.find_first_of("*?[") == std::string::npos;
    return NodePtr(node);
  }

  static constexpr int kMaxDepth = 32;
  const std::string& text_;
  size_t pos_ = 0;
  int depth_ = 0;
};

class Evaluator {
 public:
  // What the evaluations of one selector share: each group's hosts, once
  // evaluated, and host names to indices.
  struct Shared {
    std::map<std::string, std::vector<bool>> groups;
    std::unordered_map<std::string_view, size_t> index;
  };
  Evaluator(const Inventory& inv, const std::string& text,
            std::shared_ptr<Shared> shared = std::make_shared<Shared>())
      : inv_(inv), text_(text), cache_(std::move(shared)) {}

  Result<std::vector<bool>> Eval(const SelectorNode& n) {
    std::vector<bool> out(inv_.hosts.size(), false);
    switch (n.kind) {
      case SelectorNode::kAll:
        std::fill(out.begin(), out.end(), true);
        return out;
      case SelectorNode::kGroup:
        return EvalGroup(n);
      case SelectorNode::kLabelEq:
      case SelectorNode::kLabelNe:
        for (size_t i = 0; i < inv_.hosts.size(); ++i) {
          auto it = inv_.hosts[i].labels.find(n.a);
          const bool eq = it != inv_.hosts[i].labels.end() && n.pattern->Matches(it->second);
          out[i] = n.kind == SelectorNode::kLabelEq ? eq : !eq;
        }
        return out;
      case SelectorNode::kName: {
        bool any = false;
        for (size_t i = 0; i < inv_.hosts.size(); ++i) {
          if (n.exact ? inv_.hosts[i].name == n.a : n.pattern->Matches(inv_.hosts[i].name)) {
            out[i] = any = true;
          }
        }
        if (n.exact && !any) {
          return PositionError(text_, n.pos, "no host named '" + n.a + "' in " + inv_.source);
        }
        return out;
      }
      case SelectorNode::kUnion:
      case SelectorNode::kInter:
      case SelectorNode::kExcept: {
        auto l = Eval(*n.lhs);
        if (!l.ok()) return l;
        auto r = Eval(*n.rhs);
        if (!r.ok()) return r;
        for (size_t i = 0; i < out.size(); ++i) {
          bool a = (*l)[i], b = (*r)[i];
          out[i] = n.kind == SelectorNode::kUnion   ? (a || b)
                   : n.kind == SelectorNode::kInter ? (a && b)
                                                    : (a && !b);
        }
        return out;
      }
    }
    return out;
  }

 private:
  Result<std::vector<bool>> EvalGroup(const SelectorNode& n) {
    auto it = inv_.groups.find(n.a);
    if (it == inv_.groups.end()) {
      std::string known;
      for (const auto& [name, g] : inv_.groups) known += (known.empty() ? "" : ", ") + name;
      return PositionError(
          text_, n.pos,
          "unknown group '" + n.a + "' (" +
              (known.empty() ? std::string("the inventory defines no groups") : "known: " + known) +
              ")");
    }
    const Group& g = it->second;
    std::vector<bool> out(inv_.hosts.size(), false);
    if (g.selector.empty()) {
      if (cache_->index.empty()) {
        for (size_t i = 0; i < inv_.hosts.size(); ++i) cache_->index.emplace(inv_.hosts[i].name, i);
      }
      for (const auto& m : g.members) {
        if (auto it = cache_->index.find(m); it != cache_->index.end()) out[it->second] = true;
      }
      return out;
    }
    // Each group is evaluated once per selector, however often it is named.
    if (auto done = cache_->groups.find(g.name); done != cache_->groups.end()) {
      return done->second;
    }
    if (active_.count(g.name)) {
      return PositionError(text_, n.pos, "group '" + g.name + "' refers to itself");
    }
    if (active_.size() >= 16) {
      return PositionError(text_, n.pos, "groups nested deeper than 16 at '" + g.name + "'");
    }
    auto sel = ParseSelector(g.selector);
    if (!sel.ok()) return sel.status();
    active_.insert(g.name);
    Evaluator inner(inv_, g.selector, cache_);
    inner.active_ = active_;
    auto r = inner.Eval(sel->root());
    active_.erase(g.name);
    if (!r.ok()) {
      return Status::Invalid(inv_.source + ":" + std::to_string(g.line) + ": in group '" + g.name +
                             "': " + r.status().message());
    }
    cache_->groups.emplace(g.name, *r);
    return r;
  }

  const Inventory& inv_;
  const std::string& text_;
  std::set<std::string> active_;
  std::shared_ptr<Shared> cache_;
};

}  // namespace

Result<Selector> ParseSelector(const std::string& text) {
  // Bounds keep parsing and evaluation (both recursive) far from the stack's end.
  constexpr size_t kMaxLength = 4096;
  if (text.size() > kMaxLength) {
    return Status::Invalid("selector is " + std::to_string(text.size()) +
                           " characters long; the limit is " + std::to_string(kMaxLength) +
                           " (use groups in the inventory for long lists)");
  }
  Parser p(text);
  auto root = p.Parse();
  if (!root.ok()) return root.status();
  return Selector(*root, text);
}

Result<std::vector<size_t>> Selector::Evaluate(const Inventory& inv) const {
  Evaluator ev(inv, text_);
  auto bits = ev.Eval(*root_);
  if (!bits.ok()) return bits.status();
  std::vector<size_t> out;
  for (size_t i = 0; i < bits->size(); ++i) {
    if ((*bits)[i]) out.push_back(i);
  }
  return out;
}

Result<std::vector<const Host*>> SelectHosts(const Inventory& inv, const std::string& text,
                                             bool allow_empty) {
  auto sel = ParseSelector(text);
  if (!sel.ok()) return sel.status();
  auto idx = sel->Evaluate(inv);
  if (!idx.ok()) return idx.status();
  if (idx->empty() && !allow_empty) {
    return Status::Invalid("selector '" + text + "' matches no host in " + inv.source +
                           " (pass --allow-empty to accept that)");
  }
  std::vector<const Host*> out;
  for (size_t i : *idx) out.push_back(&inv.hosts[i]);
  return out;
}

}  // namespace herd::control
