// Backtracking matcher for pre-tokenizer split patterns (see regex.hpp for the subset).
#include "tokenizer/regex.hpp"

#include <algorithm>
#include <array>
#include <type_traits>

#include "tokenizer/unicode.hpp"

namespace slm::tokenizer_internal {

// ---------------------------------------------------------------------------------------------
// Program: a tree of nodes; character sets are compiled to an ASCII bitmap plus non-ASCII rules.
// ---------------------------------------------------------------------------------------------

namespace {

struct CharSet {
  std::array<bool, 128> ascii{};
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive, non-ASCII part included
  uint32_t categories = 0;      // \p{..} masks
  uint32_t not_categories = 0;  // \P{..} masks (a code point matches if its category is outside)
  bool space = false, not_space = false;
  bool negated = false;

  bool raw_contains(uint32_t cp, uint8_t props) const {
    const uint32_t cat_bit = 1u << (props & unicode::tables::kCategoryMask);
    if (categories & cat_bit) return true;
    if (not_categories && !(not_categories & cat_bit)) return true;
    const bool sp = props & unicode::tables::kFlagJsSpace;
    if (space && sp) return true;
    if (not_space && !sp) return true;
    for (const auto& r : ranges)
      if (cp >= r.first && cp <= r.second) return true;
    return false;
  }
  void finish() {
    for (uint32_t c = 0; c < 128; ++c) ascii[c] = raw_contains(c, unicode::properties(c)) != negated;
  }
  bool contains(uint32_t cp, uint8_t props) const {
    if (cp < 128) return ascii[cp];
    // Bytes of invalid UTF-8 are carried as 0x110000 + byte with the properties of Cn.
    return raw_contains(cp, props) != negated;
  }
};

enum class Kind { kSet, kSeq, kAlt, kRepeat, kLookahead, kStart, kEnd };

struct Node {
  Kind kind = Kind::kSeq;
  int set = -1;                 // kSet
  std::vector<int> children;    // kSeq, kAlt; kRepeat / kLookahead use children[0]
  uint32_t min = 0, max = 0;    // kRepeat
  bool greedy = true;           // kRepeat
  bool negate = false;          // kLookahead
};

constexpr uint32_t kUnbounded = 0xFFFFFFFFu;
// Bounds that keep a hostile pattern from a tokenizer.json from exhausting the stack: the parser
// recurses per group level, the matcher per iteration of a repeated group (a repeated single
// character class is matched iteratively and is not limited). Real split patterns need a few
// levels; past the limit a match attempt fails (documented in regex.hpp).
constexpr size_t kMaxPatternLength = 1 << 14;
constexpr size_t kMaxGroupDepth = 64;
constexpr size_t kMaxMatchDepth = 1024;

}  // namespace

struct Regex::Program {
  std::string pattern;
  std::vector<Node> nodes;
  std::vector<CharSet> sets;
  int root = -1;
};

namespace {

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

class Parser {
 public:
  Parser(std::string_view pattern, Regex::Program& prog) : prog_(prog) {
    for (size_t i = 0; i < pattern.size();) {
      uint32_t cp = unicode::decode_utf8(pattern, i);
      cps_.push_back(cp);
    }
  }

  Expected<int> parse() {
    for (uint32_t cp : cps_)
      if (cp == unicode::kInvalid) return errorf("regex: pattern is not valid UTF-8");
    if (cps_.size() > kMaxPatternLength)
      return errorf("regex: pattern of %zu code points is longer than %zu", cps_.size(), kMaxPatternLength);
    auto node = parse_alt();
    if (!node) return node;
    if (pos_ != cps_.size()) return fail("unbalanced ')'");
    return node;
  }

 private:
  Error fail(const char* what) const {
    return errorf("regex: %s at code point %zu of pattern", what, pos_);
  }
  bool at_end() const { return pos_ >= cps_.size(); }
  uint32_t peek(size_t k = 0) const { return pos_ + k < cps_.size() ? cps_[pos_ + k] : 0; }

  int add(Node n) {
    prog_.nodes.push_back(std::move(n));
    return int(prog_.nodes.size() - 1);
  }
  int add_set(CharSet s) {
    s.finish();
    prog_.sets.push_back(std::move(s));
    Node n;
    n.kind = Kind::kSet;
    n.set = int(prog_.sets.size() - 1);
    return add(std::move(n));
  }

  Expected<int> parse_alt() {
    std::vector<int> alts;
    while (true) {
      auto seq = parse_seq();
      if (!seq) return seq;
      alts.push_back(*seq);
      if (!at_end() && peek() == '|') {
        ++pos_;
        continue;
      }
      break;
    }
    if (alts.size() == 1) return alts[0];
    Node n;
    n.kind = Kind::kAlt;
    n.children = std::move(alts);
    return add(std::move(n));
  }

  Expected<int> parse_seq() {
    std::vector<int> items;
    while (!at_end() && peek() != '|' && peek() != ')') {
      auto atom = parse_atom();
      if (!atom) return atom;
      int node = *atom;
      // Quantifiers.
      while (!at_end()) {
        uint32_t lo, hi;
        const uint32_t c = peek();
        if (c == '*') { lo = 0; hi = kUnbounded; ++pos_; }
        else if (c == '+') { lo = 1; hi = kUnbounded; ++pos_; }
        else if (c == '?') { lo = 0; hi = 1; ++pos_; }
        else if (c == '{' && parse_braces(lo, hi)) {}
        else break;
        Node r;
        r.kind = Kind::kRepeat;
        r.min = lo;
        r.max = hi;
        if (!at_end() && peek() == '?') { r.greedy = false; ++pos_; }
        r.children = {node};
        if (prog_.nodes[node].kind == Kind::kStart || prog_.nodes[node].kind == Kind::kEnd)
          return fail("quantifier after an anchor");
        node = add(std::move(r));
      }
      items.push_back(node);
    }
    if (items.size() == 1) return items[0];
    Node n;
    n.kind = Kind::kSeq;
    n.children = std::move(items);
    return add(std::move(n));
  }

  // {m}, {m,}, {m,n}; leaves pos_ unchanged and returns false if this is not a quantifier.
  bool parse_braces(uint32_t& lo, uint32_t& hi) {
    size_t p = pos_ + 1;
    auto number = [&](uint32_t& v) {
      size_t start = p;
      v = 0;
      while (p < cps_.size() && cps_[p] >= '0' && cps_[p] <= '9' && p - start < 9) v = v * 10 + (cps_[p++] - '0');
      return p > start;
    };
    if (!number(lo)) return false;
    hi = lo;
    if (p < cps_.size() && cps_[p] == ',') {
      ++p;
      if (!number(hi)) hi = kUnbounded;
    }
    if (p >= cps_.size() || cps_[p] != '}' || hi < lo) return false;
    pos_ = p + 1;
    return true;
  }

  Expected<int> parse_atom() {
    const uint32_t c = peek();
    if (c == '(') {
      if (++depth_ > kMaxGroupDepth) return fail("groups nested too deeply");
      ++pos_;
      bool look = false, negate = false, fold = false;
      if (peek() == '?') {
        if (peek(1) == ':') { pos_ += 2; }
        else if (peek(1) == '=') { pos_ += 2; look = true; }
        else if (peek(1) == '!') { pos_ += 2; look = true; negate = true; }
        else if (peek(1) == 'i' && peek(2) == ':') { pos_ += 3; fold = true; }
        else return fail("unsupported group syntax");
      }
      const bool saved_fold = fold_;
      fold_ = fold_ || fold;
      auto inner = parse_alt();
      fold_ = saved_fold;
      if (!inner) return inner;
      if (at_end() || peek() != ')') return fail("missing ')'");
      ++pos_;
      --depth_;
      if (!look) return inner;
      Node n;
      n.kind = Kind::kLookahead;
      n.negate = negate;
      n.children = {*inner};
      return add(std::move(n));
    }
    if (c == '[') return parse_class();
    if (c == '^') { ++pos_; Node n; n.kind = Kind::kStart; return add(std::move(n)); }
    if (c == '$') { ++pos_; Node n; n.kind = Kind::kEnd; return add(std::move(n)); }
    if (c == '*' || c == '+' || c == '?' || c == '{') return fail("nothing to repeat");
    CharSet s;
    if (c == '.') {
      ++pos_;
      // ECMAScript `.`: anything but line terminators.
      s.negated = true;
      s.ranges = {{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}};
      return add_set(std::move(s));
    }
    if (c == '\\') {
      ++pos_;
      auto st = parse_escape(s, /*in_class=*/false);
      if (!st) return st.error();
      return add_set(std::move(s));
    }
    ++pos_;
    add_literal(s, c);
    return add_set(std::move(s));
  }

  void add_literal(CharSet& s, uint32_t c) {
    s.ranges.push_back({c, c});
    if (fold_) {
      if (c >= 'a' && c <= 'z') s.ranges.push_back({c - 32, c - 32});
      else if (c >= 'A' && c <= 'Z') s.ranges.push_back({c + 32, c + 32});
    }
  }

  // After a backslash. Adds what the escape denotes to `s`. Returns the literal code point when
  // the escape is a single character (for ranges), or kInvalid for a class escape.
  Expected<uint32_t> parse_escape(CharSet& s, bool in_class) {
    if (at_end()) return fail("trailing backslash");
    const uint32_t c = cps_[pos_++];
    auto literal = [&](uint32_t v) -> Expected<uint32_t> {
      add_literal(s, v);
      return v;
    };
    switch (c) {
      case 'n': return literal('\n');
      case 'r': return literal('\r');
      case 't': return literal('\t');
      case 'f': return literal('\f');
      case 'v': return literal('\v');
      case '0': return literal(0);
      case 's': s.space = true; return unicode::kInvalid;
      case 'S': s.not_space = true; return unicode::kInvalid;
      case 'd': s.ranges.push_back({'0', '9'}); return unicode::kInvalid;
      case 'w':
        s.ranges.insert(s.ranges.end(), {{'0', '9'}, {'A', 'Z'}, {'a', 'z'}, {'_', '_'}});
        return unicode::kInvalid;
      case 'D': case 'W':
        if (in_class) return fail("\\D or \\W inside a class is not supported");
        s.negated = true;
        if (c == 'D') s.ranges.push_back({'0', '9'});
        else s.ranges.insert(s.ranges.end(), {{'0', '9'}, {'A', 'Z'}, {'a', 'z'}, {'_', '_'}});
        return unicode::kInvalid;
      case 'p': case 'P': {
        if (at_end() || cps_[pos_] != '{') return fail("expected '{' after \\p");
        ++pos_;
        std::string name;
        while (!at_end() && cps_[pos_] != '}' && name.size() < 32) name += char(cps_[pos_++] & 0x7F);
        if (at_end() || cps_[pos_] != '}') return fail("unterminated \\p{...}");
        ++pos_;
        const uint32_t mask = category_mask(name);
        if (!mask) return errorf("regex: unknown Unicode property \\p{%s}", name.c_str());
        if (c == 'p') s.categories |= mask;
        else s.not_categories |= mask;
        return unicode::kInvalid;
      }
      case 'u': {
        uint32_t v = 0;
        if (!at_end() && cps_[pos_] == '{') {
          ++pos_;
          int digits = 0;
          while (!at_end() && cps_[pos_] != '}' && digits < 7) {
            int h = hex(cps_[pos_++]);
            if (h < 0) return fail("bad \\u{...} escape");
            v = v * 16 + uint32_t(h);
            ++digits;
          }
          if (at_end() || cps_[pos_] != '}' || digits == 0 || v > unicode::kMaxCodePoint)
            return fail("bad \\u{...} escape");
          ++pos_;
        } else {
          for (int k = 0; k < 4; ++k) {
            int h = at_end() ? -1 : hex(cps_[pos_]);
            if (h < 0) return fail("bad \\uXXXX escape");
            ++pos_;
            v = v * 16 + uint32_t(h);
          }
        }
        return literal(v);
      }
      case 'x': {
        uint32_t v = 0;
        for (int k = 0; k < 2; ++k) {
          int h = at_end() ? -1 : hex(cps_[pos_]);
          if (h < 0) return fail("bad \\xXX escape");
          ++pos_;
          v = v * 16 + uint32_t(h);
        }
        return literal(v);
      }
      default:
        // Escaped punctuation (and Python-style needless escapes such as \# \& \~) is literal.
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '1' && c <= '9'))
          return fail("unsupported escape");
        return literal(c);
    }
  }

  static int hex(uint32_t c) {
    if (c >= '0' && c <= '9') return int(c - '0');
    if (c >= 'a' && c <= 'f') return int(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return int(c - 'A' + 10);
    return -1;
  }

  static uint32_t category_mask(const std::string& name) {
    using namespace unicode;
    struct Entry { const char* name; uint32_t mask; };
    static const Entry kEntries[] = {
        {"L", kMaskL}, {"Letter", kMaskL}, {"M", kMaskM}, {"Mark", kMaskM}, {"N", kMaskN},
        {"Number", kMaskN}, {"P", kMaskP}, {"Punctuation", kMaskP}, {"S", kMaskS},
        {"Symbol", kMaskS}, {"Z", kMaskZ}, {"Separator", kMaskZ}, {"C", kMaskC}, {"Other", kMaskC},
        {"Lu", cat_bit(Lu)}, {"Ll", cat_bit(Ll)}, {"Lt", cat_bit(Lt)}, {"Lm", cat_bit(Lm)},
        {"Lo", cat_bit(Lo)}, {"Mn", cat_bit(Mn)}, {"Mc", cat_bit(Mc)}, {"Me", cat_bit(Me)},
        {"Nd", cat_bit(Nd)}, {"Nl", cat_bit(Nl)}, {"No", cat_bit(No)}, {"Pc", cat_bit(Pc)},
        {"Pd", cat_bit(Pd)}, {"Ps", cat_bit(Ps)}, {"Pe", cat_bit(Pe)}, {"Pi", cat_bit(Pi)},
        {"Pf", cat_bit(Pf)}, {"Po", cat_bit(Po)}, {"Sm", cat_bit(Sm)}, {"Sc", cat_bit(Sc)},
        {"Sk", cat_bit(Sk)}, {"So", cat_bit(So)}, {"Zs", cat_bit(Zs)}, {"Zl", cat_bit(Zl)},
        {"Zp", cat_bit(Zp)}, {"Cc", cat_bit(Cc)}, {"Cf", cat_bit(Cf)}, {"Cs", cat_bit(Cs)},
        {"Co", cat_bit(Co)}, {"Cn", cat_bit(Cn)},
    };
    for (const auto& e : kEntries)
      if (name == e.name) return e.mask;
    return 0;
  }

  Expected<int> parse_class() {
    ++pos_;  // '['
    CharSet s;
    if (!at_end() && peek() == '^') {
      s.negated = true;
      ++pos_;
    }
    bool first = true;
    while (true) {
      if (at_end()) return fail("unterminated character class");
      uint32_t c = peek();
      if (c == ']' && !first) { ++pos_; break; }
      first = false;
      uint32_t lo;
      if (c == '\\') {
        ++pos_;
        auto v = parse_escape(s, /*in_class=*/true);
        if (!v) return v.error();
        lo = *v;
      } else {
        ++pos_;
        lo = c;
        add_literal(s, c);
      }
      // A range lo-hi (a '-' before ']' or after a class escape is literal).
      if (lo != unicode::kInvalid && peek() == '-' && pos_ + 1 < cps_.size() && peek(1) != ']') {
        ++pos_;
        uint32_t hi;
        if (peek() == '\\') {
          ++pos_;
          CharSet scratch;
          auto v = parse_escape(scratch, /*in_class=*/true);
          if (!v) return v.error();
          if (*v == unicode::kInvalid) return fail("class escape as a range bound");
          hi = *v;
        } else {
          hi = peek();
          ++pos_;
        }
        if (hi < lo) return fail("range out of order in character class");
        s.ranges.push_back({lo, hi});
        if (fold_) {
          for (uint32_t ch = std::max<uint32_t>(lo, 'A'); ch <= std::min<uint32_t>(hi, 'z'); ++ch) {
            if (ch >= 'a' && ch <= 'z') s.ranges.push_back({ch - 32, ch - 32});
            if (ch >= 'A' && ch <= 'Z') s.ranges.push_back({ch + 32, ch + 32});
          }
        }
      }
    }
    return add_set(std::move(s));
  }

  Regex::Program& prog_;
  std::vector<uint32_t> cps_;
  size_t pos_ = 0;
  size_t depth_ = 0;
  bool fold_ = false;
};

// ---------------------------------------------------------------------------------------------
// Matcher: recursive backtracking with continuations. A repeat of a single character set (the
// common `\p{L}+`, `\s*`) is matched iteratively: count the run, then try the continuation from
// the longest (greedy) or shortest (lazy) length.
// ---------------------------------------------------------------------------------------------

class Cont {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Cont>>>
  Cont(F&& f)  // NOLINT: implicit on purpose, lambdas are passed directly
      : obj_(const_cast<void*>(static_cast<const void*>(&f))),
        fn_([](void* o, size_t p) { return (*static_cast<std::remove_reference_t<F>*>(o))(p); }) {}
  bool operator()(size_t p) const { return fn_(obj_, p); }

 private:
  void* obj_;
  bool (*fn_)(void*, size_t);
};

struct Matcher {
  const Regex::Program& prog;
  const uint32_t* cps;
  const uint8_t* props;
  size_t n;
  mutable size_t depth = 0;  // nesting of match() calls

  bool in_set(int set, size_t pos) const { return prog.sets[size_t(set)].contains(cps[pos], props[pos]); }

  bool seq(const std::vector<int>& items, size_t i, size_t pos, const Cont& k) const {
    if (i == items.size()) return k(pos);
    if (i + 1 == items.size()) return match(items[i], pos, k);
    auto next = [&](size_t p) { return seq(items, i + 1, p, k); };
    return match(items[i], pos, Cont(next));
  }

  bool repeat_general(const Node& node, uint32_t count, size_t pos, const Cont& k) const {
    auto more = [&](size_t p) {
      if (p == pos) return false;  // an empty iteration cannot make progress
      return repeat_general(node, count + 1, p, k);
    };
    if (node.greedy) {
      if (count < node.max && match(node.children[0], pos, Cont(more))) return true;
      return count >= node.min && k(pos);
    }
    if (count >= node.min && k(pos)) return true;
    return count < node.max && match(node.children[0], pos, Cont(more));
  }

  bool match(int id, size_t pos, const Cont& k) const {
    if (depth >= kMaxMatchDepth) return false;
    ++depth;
    const bool r = match_node(id, pos, k);
    --depth;
    return r;
  }

  bool match_node(int id, size_t pos, const Cont& k) const {
    const Node& node = prog.nodes[size_t(id)];
    switch (node.kind) {
      case Kind::kSet:
        return pos < n && in_set(node.set, pos) && k(pos + 1);
      case Kind::kSeq:
        return seq(node.children, 0, pos, k);
      case Kind::kAlt:
        for (int alt : node.children)
          if (match(alt, pos, k)) return true;
        return false;
      case Kind::kRepeat: {
        const Node& child = prog.nodes[size_t(node.children[0])];
        if (child.kind != Kind::kSet) return repeat_general(node, 0, pos, k);
        size_t run = 0;
        const size_t limit = node.max == kUnbounded ? n - pos : std::min<size_t>(node.max, n - pos);
        while (run < limit && in_set(child.set, pos + run)) ++run;
        if (run < node.min) return false;
        if (node.greedy) {
          for (size_t len = run + 1; len-- > node.min;)
            if (k(pos + len)) return true;
        } else {
          for (size_t len = node.min; len <= run; ++len)
            if (k(pos + len)) return true;
        }
        return false;
      }
      case Kind::kLookahead: {
        auto accept = [](size_t) { return true; };
        const bool found = match(node.children[0], pos, Cont(accept));
        return found != node.negate && k(pos);
      }
      case Kind::kStart:
        return pos == 0 && k(pos);
      case Kind::kEnd:
        return pos == n && k(pos);
    }
    return false;
  }
};

}  // namespace

Expected<Regex> Regex::compile(std::string_view pattern) {
  auto prog = std::make_shared<Program>();
  prog->pattern = std::string(pattern);
  Parser parser(pattern, *prog);
  auto root = parser.parse();
  if (!root) return root.error();
  prog->root = *root;
  Regex re;
  re.program_ = std::move(prog);
  return re;
}

const std::string& Regex::pattern() const { return program_->pattern; }

void Regex::find_all(std::span<const uint32_t> cps, std::span<const uint8_t> props,
                     std::vector<std::pair<uint32_t, uint32_t>>& out) const {
  const Matcher m{*program_, cps.data(), props.data(), cps.size()};
  size_t pos = 0;
  while (pos <= cps.size()) {
    size_t end = 0;
    auto accept = [&](size_t p) {
      end = p;
      return true;
    };
    if (m.match(program_->root, pos, Cont(accept))) {
      out.push_back({uint32_t(pos), uint32_t(end)});
      pos = end > pos ? end : pos + 1;
    } else {
      ++pos;
    }
  }
}

}  // namespace slm::tokenizer_internal
