#include "cli/link_parser.h"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <span>
#include <string_view>

#include "core/mac_address.h"
#include "core/mode.h"

namespace umacvlan::cli {
namespace {

using control::LinkOp;
using control::LinkRequest;

// nullopt: the handler accepted its words.
using Outcome = std::optional<ParseError>;

constexpr std::size_t kIfNameSize = 16;      // IFNAMSIZ, terminating NUL included
constexpr std::size_t kAltIfNameSize = 128;  // ALTIFNAMSIZ
constexpr std::int64_t kMinMtu = 68;         // a macvlan's min_mtu
constexpr std::int64_t kMaxMtu = 65535;      // a macvlan's max_mtu (ETH_MAX_MTU)

// ---------------------------------------------------------------- messages

ParseError incomplete() {
  return {kExitUsage, "Command line is not complete. Try option \"help\"\n"};
}

ParseError wrong_argument(std::string_view arg, std::string_view why) {
  return {kExitUsage, fmt::format("Error: argument \"{}\" is wrong: {}\n", arg, why)};
}

ParseError garbage(std::string_view word) {
  return {kExitUsage,
          fmt::format("Error: either \"dev\" is duplicate, or \"{}\" is a garbage.\n", word)};
}

ParseError invalid_lladdr(std::string_view part) {
  return {kExitSyntax, fmt::format("\"{}\" is invalid lladdr.\n", part)};
}

// What ip prints when the kernel answers with an errno and no extack text.
ParseError rtnetlink(std::string_view strerror_text) {
  return {kExitRefused, fmt::format("RTNETLINK answers: {}\n", strerror_text)};
}

ParseError macvlan_error(std::string_view first_line) {
  return {kExitSyntax, std::string(first_line) + "\n" + macvlan_usage()};
}

ParseError not_macvlan(std::string_view type) {
  return {kExitSyntax,
          fmt::format("Error: umacvlan only handles \"type macvlan\" links, not \"{}\".\n", type)};
}

// ------------------------------------------------------------------ values

// Reads a number the way strtoll(text, base 0) does, all of text, in [lo, hi].
std::optional<std::int64_t> parse_number(const std::string& text, std::int64_t lo,
                                         std::int64_t hi) {
  if (text.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 0);
  if (errno != 0 || end == text.c_str() || *end != '\0') return std::nullopt;
  if (v < lo || v > hi) return std::nullopt;
  return v;
}

// One ':'-separated part of an LLADDR, read like scanf("%x"): leading blanks,
// a sign, "0x", hex digits, anything after them ignored; at most 0xff.
std::optional<std::uint8_t> parse_lladdr_part(std::string_view part) {
  std::size_t i = 0;
  while (i < part.size() && std::isspace(static_cast<unsigned char>(part[i]))) ++i;
  bool negative = false;
  if (i < part.size() && (part[i] == '+' || part[i] == '-')) negative = part[i++] == '-';
  if (i + 2 < part.size() && part[i] == '0' && (part[i + 1] == 'x' || part[i + 1] == 'X') &&
      std::isxdigit(static_cast<unsigned char>(part[i + 2]))) {
    i += 2;
  }
  std::uint32_t value = 0;
  std::size_t digits = 0;
  bool overflow = false;
  for (; i < part.size() && std::isxdigit(static_cast<unsigned char>(part[i])); ++i, ++digits) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(part[i])));
    const std::uint32_t d =
        c <= '9' ? static_cast<std::uint32_t>(c - '0') : static_cast<std::uint32_t>(c - 'a' + 10);
    overflow = overflow || value > 0x0fffffffu;
    value = value * 16 + d;
  }
  if (digits == 0 || overflow) return std::nullopt;
  if (negative) value = 0u - value;
  if (value > 0xff) return std::nullopt;
  return static_cast<std::uint8_t>(value);
}

struct Lladdr {
  std::vector<std::uint8_t> bytes;
  std::optional<std::string> bad_part;  // the first part that is not a byte
  bool ok() const { return !bad_part && !bytes.empty(); }
  bool is_ethernet() const { return ok() && bytes.size() == core::MacAddress::kSize; }
  core::MacAddress mac() const { return core::MacAddress::from_bytes(bytes.data()); }
};

Lladdr parse_lladdr(std::string_view text) {
  Lladdr out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t colon = text.find(':', start);
    const std::string_view part = text.substr(
        start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    auto byte = parse_lladdr_part(part);
    if (!byte) {
      out.bad_part = std::string(part);
      out.bytes.clear();
      return out;
    }
    out.bytes.push_back(*byte);
    if (colon == std::string_view::npos) return out;
    start = colon + 1;
  }
}

// ip's check for a new interface name (IFNAMSIZ) and for a name to look up
// (altnames may be longer).
bool valid_ifname(std::string_view name, std::size_t size_limit) {
  if (name.empty() || name.size() >= size_limit) return false;
  for (char c : name) {
    if (c == '/' || std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// ------------------------------------------------------------------ cursor

class Cursor {
 public:
  explicit Cursor(std::span<const std::string> args) : args_(args) {}
  bool done() const { return pos_ >= args_.size(); }
  const std::string& peek() const { return args_[pos_]; }
  const std::string& take() { return args_[pos_++]; }
  std::size_t position() const { return pos_; }
  // The value of the keyword just taken (ip's NEXT_ARG); nullptr at the end.
  const std::string* value() { return done() ? nullptr : &args_[pos_++]; }

 private:
  std::span<const std::string> args_;
  std::size_t pos_ = 0;
};

// ------------------------------------------------------------------- draft

// What the words said, before the checks that look at the whole command.
struct Draft {
  std::optional<std::string> name;  // add: "name NAME"
  std::optional<std::string> dev;   // "dev NAME" or a bare NAME
  std::optional<std::string> link;
  std::optional<Lladdr> address;
  std::optional<std::int64_t> mtu;
  std::optional<bool> up;
  std::optional<std::string> type;
  // macvlan options
  std::optional<core::Mode> mode;
  std::optional<std::uint16_t> flags;
  std::optional<std::uint32_t> bcqueuelen;
  std::optional<std::int32_t> bclim;
  std::optional<bool> spoofchk;
  std::optional<bool> hostaccess;
  std::optional<bool> macnat;
  std::optional<std::uint32_t> macnat_ageing;
  core::SourceOp macaddr_mode = core::SourceOp::kNone;
  std::vector<Lladdr> macaddrs;
  // Position of the word that ended a "macaddr set" list, if one did.
  std::optional<std::size_t> set_list_end;
};

using Handler = Outcome (*)(Cursor&, Draft&);

struct Rule {
  std::string_view keyword;
  Handler handle;
};

const Rule* find_rule(std::span<const Rule> rules, std::string_view word) {
  for (const Rule& r : rules) {
    if (r.keyword == word) return &r;
  }
  return nullptr;
}

// ------------------------------------------------------- generic keywords

Outcome take_link(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  d.link = *v;  // ip keeps the last one
  return std::nullopt;
}

Outcome take_name(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  if (d.name) {
    return ParseError{kExitUsage,
                      fmt::format("Error: duplicate \"name\": \"{}\" is the second value.\n", *v)};
  }
  if (!valid_ifname(*v, kIfNameSize)) return wrong_argument(*v, "\"name\" not a valid ifname");
  d.name = *v;
  return std::nullopt;
}

Outcome set_dev(std::string_view word, Draft& d) {
  if (d.dev) return garbage(word);
  if (!valid_ifname(word, kAltIfNameSize))
    return wrong_argument(word, "\"dev\" not a valid ifname");
  d.dev = std::string(word);
  return std::nullopt;
}

Outcome take_dev(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  return set_dev(*v, d);
}

Outcome take_address(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  Lladdr addr = parse_lladdr(*v);
  if (!addr.ok()) return invalid_lladdr(addr.bad_part.value_or(""));
  d.address = std::move(addr);  // ip keeps the last one
  return std::nullopt;
}

Outcome take_mtu(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  if (d.mtu) {
    return ParseError{kExitUsage,
                      fmt::format("Error: duplicate \"mtu\": \"{}\" is the second value.\n", *v)};
  }
  auto mtu = parse_number(*v, std::numeric_limits<std::int32_t>::min(),
                          std::numeric_limits<std::int32_t>::max());
  // ip's invarg() message for the MTU ends in its own newline, hence the blank line.
  if (!mtu) return wrong_argument(*v, "Invalid \"mtu\" value\n");
  d.mtu = *mtu;
  return std::nullopt;
}

Outcome take_up(Cursor&, Draft& d) {
  d.up = true;
  return std::nullopt;
}

Outcome take_down(Cursor&, Draft& d) {
  d.up = false;
  return std::nullopt;
}

Outcome take_type(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  d.type = *v;
  return std::nullopt;
}

Outcome show_link_help(Cursor&, Draft&) {
  return ParseError{kExitUsage, link_usage()};
}

// ip keywords this tool does not implement: said plainly instead of ip's
// "garbage" message, which would be misleading for a real ip keyword.
constexpr std::string_view kUnsupported[] = {
    "txqueuelen",  "txqlen",       "qlen",         "broadcast",    "brd",          "peer",
    "netns",       "alias",        "index",        "master",       "nomaster",     "vrf",
    "group",       "arp",          "multicast",    "allmulticast", "promisc",      "trailers",
    "dynamic",     "carrier",      "vf",           "xdp",          "addrgenmode",  "protodown",
    "numtxqueues", "numrxqueues",  "gso_max_size", "gso_max_segs", "gro_max_size", "parentdev",
    "link-netns",  "link-netnsid", "altname",      "property",     "name"};

Outcome unsupported_keyword(std::string_view word) {
  for (auto k : kUnsupported) {
    if (k == word) {
      return ParseError{kExitUsage, fmt::format("Error: \"{}\" is not supported by umacvlan; see "
                                                "\"umacvlan link help\".\n",
                                                word)};
    }
  }
  return std::nullopt;
}

// ------------------------------------------------------- macvlan keywords

Outcome take_mode(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  auto mode = core::parse_mode(*v);
  if (!mode) {
    return ParseError{kExitSyntax,
                      fmt::format("Error: argument of \"mode\" must be \"private\", \"vepa\", "
                                  "\"bridge\", \"passthru\" or \"source\", not \"{}\"\n",
                                  *v)};
  }
  d.mode = mode;  // ip keeps the last one
  return std::nullopt;
}

// Flags accumulate; "flag null" only makes the (zero) flags attribute present.
void add_flag(Draft& d, std::uint16_t bit) {
  d.flags = static_cast<std::uint16_t>(d.flags.value_or(0) | bit);
}

Outcome take_flag(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  if (*v == "null") {
    add_flag(d, 0);
  } else if (*v == "nopromisc") {
    add_flag(d, core::kFlagNoPromisc);
  } else if (*v == "nodst") {
    add_flag(d, core::kFlagNoDst);
  } else {
    return ParseError{kExitSyntax, fmt::format("Error: argument of \"flag\" must be \"nopromisc\", "
                                               "\"nodst\" or \"null\", not \"{}\"\n",
                                               *v)};
  }
  return std::nullopt;
}

Outcome take_nopromisc(Cursor&, Draft& d) {
  add_flag(d, core::kFlagNoPromisc);
  return std::nullopt;
}

Outcome take_nodst(Cursor&, Draft& d) {
  add_flag(d, core::kFlagNoDst);
  return std::nullopt;
}

Outcome take_bcqueuelen(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  auto n = parse_number(*v, 0, std::numeric_limits<std::uint32_t>::max());
  if (!n) {
    return ParseError{kExitSyntax, fmt::format("Error: argument of \"bcqueuelen\" must be a "
                                               "positive integer [0-4294967295], not \"{}\"\n",
                                               *v)};
  }
  d.bcqueuelen = static_cast<std::uint32_t>(*n);
  return std::nullopt;
}

Outcome take_bclim(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  auto n = parse_number(*v, std::numeric_limits<std::int32_t>::min(),
                        std::numeric_limits<std::int32_t>::max());
  if (!n) {
    return ParseError{kExitSyntax, fmt::format("Error: argument of \"bclim\" must be an integer "
                                               "[-2147483648-2147483647], not \"{}\"\n",
                                               *v)};
  }
  d.bclim = static_cast<std::int32_t>(*n);
  return std::nullopt;
}

// "on" or "off" after KEYWORD into *out.
Outcome take_on_off(Cursor& c, const char* keyword, std::optional<bool>* out) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  if (*v != "on" && *v != "off") {
    return ParseError{kExitSyntax, fmt::format("Error: argument of \"{}\" must be \"on\" or "
                                               "\"off\", not \"{}\"\n",
                                               keyword, *v)};
  }
  *out = *v == "on";
  return std::nullopt;
}

Outcome take_spoofchk(Cursor& c, Draft& d) {
  return take_on_off(c, "spoofchk", &d.spoofchk);
}
Outcome take_hostaccess(Cursor& c, Draft& d) {
  return take_on_off(c, "hostaccess", &d.hostaccess);
}
Outcome take_macnat(Cursor& c, Draft& d) {
  return take_on_off(c, "macnat", &d.macnat);
}

// Without "macnat" too: the port's macnat decides what a new ageing means.
Outcome take_macnat_ageing(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  auto n = parse_number(*v, control::kMinMacnatAgeing, control::kMaxMacnatAgeing);
  if (!n) {
    return ParseError{kExitSyntax,
                      fmt::format("Error: argument of \"macnat_ageing\" must be an integer "
                                  "[{}-{}], not \"{}\"\n",
                                  control::kMinMacnatAgeing, control::kMaxMacnatAgeing, *v)};
  }
  d.macnat_ageing = static_cast<std::uint32_t>(*n);
  return std::nullopt;
}

Outcome take_one_source_mac(Cursor& c, Lladdr* out) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  Lladdr addr = parse_lladdr(*v);
  if (!addr.ok()) return invalid_lladdr(addr.bad_part.value_or(""));
  // ip exits 1 silently here; we say which word was wrong.
  if (!addr.is_ethernet()) return invalid_lladdr(*v);
  *out = std::move(addr);
  return std::nullopt;
}

// iproute2 6.1 sends every macaddr operation of a command, but the kernel
// acts on one: the last. So the last operation given replaces the earlier
// ones, with its own addresses.
Outcome take_macaddr(Cursor& c, Draft& d) {
  const std::string* op = c.value();
  if (op == nullptr) return incomplete();
  if (*op == "add" || *op == "del") {
    Lladdr mac;
    if (auto e = take_one_source_mac(c, &mac)) return e;
    d.macaddr_mode = *op == "add" ? core::SourceOp::kAdd : core::SourceOp::kDel;
    d.macaddrs = {std::move(mac)};
  } else if (*op == "set") {
    // The list ends at the first word that is not an Ethernet address; that
    // word is read again as an option.
    d.macaddr_mode = core::SourceOp::kSet;
    d.macaddrs.clear();
    while (!c.done()) {
      Lladdr addr = parse_lladdr(c.peek());
      if (!addr.is_ethernet()) {
        d.set_list_end = c.position();
        break;
      }
      c.take();
      d.macaddrs.push_back(std::move(addr));
    }
  } else if (*op == "flush") {
    d.macaddr_mode = core::SourceOp::kFlush;
    d.macaddrs.clear();
  } else {
    return ParseError{kExitSyntax, macvlan_usage()};  // what ip prints: the usage alone
  }
  return std::nullopt;
}

Outcome show_macvlan_help(Cursor&, Draft&) {
  return ParseError{kExitSyntax, macvlan_usage()};
}

constexpr Rule kMacvlanRules[] = {
    {"mode", &take_mode},
    {"flag", &take_flag},
    {"nopromisc", &take_nopromisc},
    {"nodst", &take_nodst},
    {"bcqueuelen", &take_bcqueuelen},
    {"bclim", &take_bclim},
    {"spoofchk", &take_spoofchk},
    {"hostaccess", &take_hostaccess},
    {"macnat", &take_macnat},
    {"macnat_ageing", &take_macnat_ageing},
    {"macaddr", &take_macaddr},
    {"help", &show_macvlan_help},
};

constexpr Rule kAddRules[] = {
    {"link", &take_link},       {"name", &take_name}, {"dev", &take_dev},
    {"address", &take_address}, {"mtu", &take_mtu},   {"up", &take_up},
    {"down", &take_down},       {"type", &take_type}, {"help", &show_link_help},
};

constexpr Rule kSetRules[] = {
    {"dev", &take_dev},   {"address", &take_address}, {"mtu", &take_mtu},        {"up", &take_up},
    {"down", &take_down}, {"type", &take_type},       {"help", &show_link_help},
};

constexpr Rule kDeleteRules[] = {
    {"dev", &take_dev},
    {"type", &take_type},
    {"help", &show_link_help},
};

// ip looks any name up without judging it, and shows nothing for a name it
// cannot find.
Outcome take_show_dev(Cursor& c, Draft& d) {
  const std::string* v = c.value();
  if (v == nullptr) return incomplete();
  if (d.dev) return garbage(*v);
  d.dev = *v;
  return std::nullopt;
}

constexpr Rule kShowRules[] = {
    {"dev", &take_show_dev},
    {"type", &take_type},
    {"help", &show_link_help},
};

// Reads keywords until the end, or up to and including "type X" when
// stop_at_type (what follows belongs to the link type's options). Words that
// are not keywords name the device, as in ip.
Outcome parse_generic(Cursor& c, Draft& d, std::span<const Rule> rules, bool stop_at_type) {
  while (!c.done()) {
    const std::string& word = c.take();
    if (const Rule* rule = find_rule(rules, word)) {
      if (auto e = rule->handle(c, d)) return e;
      if (stop_at_type && word == "type") return std::nullopt;
      continue;
    }
    if (auto e = unsupported_keyword(word)) return e;
    if (auto e = set_dev(word, d)) return e;
  }
  return std::nullopt;
}

Outcome parse_macvlan_options(Cursor& c, Draft& d) {
  while (!c.done()) {
    const std::size_t position = c.position();
    const std::string& word = c.take();
    const Rule* rule = find_rule(kMacvlanRules, word);
    if (rule == nullptr) {
      std::string message;
      // A word that ended a "macaddr set" list: ip first complains about it
      // as an address, then as an option.
      if (d.set_list_end == position) {
        Lladdr as_addr = parse_lladdr(word);
        if (as_addr.bad_part) message = invalid_lladdr(*as_addr.bad_part).message;
      }
      message += fmt::format("macvlan: unknown option \"{}\"?\n", word);
      return ParseError{kExitSyntax, message + macvlan_usage()};
    }
    if (auto e = rule->handle(c, d)) return e;
  }
  const std::uint16_t flags = d.flags.value_or(0);
  if ((flags & core::kFlagNoPromisc) != 0 && d.mode != core::Mode::kPassthru) {
    return macvlan_error("macvlan: nopromisc flag only valid in passthru mode");
  }
  // nodst outside source mode: iproute2 6.1 lets it through and the kernel
  // stores it ("mode bridge nodst"), so we accept it too. It only means
  // something on a source-mode device.
  return std::nullopt;
}

// What the kernel's validate() for a macvlan refuses on the words alone:
// the address first, then the source list.
Outcome check_like_kernel(const Draft& d) {
  if (d.address) {
    if (!d.address->is_ethernet()) return rtnetlink("Invalid argument");
    if (!d.address->mac().is_valid_unicast()) return rtnetlink("Cannot assign requested address");
  }
  for (const Lladdr& mac : d.macaddrs) {
    if (!mac.mac().is_valid_unicast()) return rtnetlink("Cannot assign requested address");
  }
  return std::nullopt;
}

Outcome check_mtu(const Draft& d) {
  if (!d.mtu) return std::nullopt;
  if (*d.mtu < kMinMtu) return ParseError{kExitRefused, "Error: mtu less than device minimum.\n"};
  if (*d.mtu > kMaxMtu) {
    return ParseError{kExitRefused, "Error: mtu greater than device maximum.\n"};
  }
  return std::nullopt;
}

void fill_macvlan(const Draft& d, LinkRequest* r) {
  r->mode = d.mode;
  r->flags = d.flags;
  r->bcqueuelen = d.bcqueuelen;
  r->bclim = d.bclim;
  r->spoofchk = d.spoofchk;
  r->hostaccess = d.hostaccess;
  r->macnat = d.macnat;
  r->macnat_ageing = d.macnat_ageing;
  r->macaddr_mode = d.macaddr_mode;
  for (const Lladdr& mac : d.macaddrs) r->macaddrs.push_back(mac.mac());
}

void fill_common(const Draft& d, LinkRequest* r) {
  if (d.address) r->address = d.address->mac();
  if (d.mtu) r->mtu = static_cast<std::uint32_t>(*d.mtu);
  r->up = d.up;
}

// ---------------------------------------------------------------- commands

LinkCommand parse_add(Cursor& c) {
  Draft d;
  if (auto e = parse_generic(c, d, kAddRules, /*stop_at_type=*/true)) return *e;
  if (d.name && d.dev) {
    return ParseError{kExitUsage,
                      "both \"name\" and \"dev\" cannot be used when creating devices.\n"};
  }
  if (!d.type) {
    return ParseError{kExitSyntax,
                      "Not enough information: \"type\" argument is required (umacvlan only "
                      "creates links of \"type macvlan\")\n"};
  }
  if (*d.type != "macvlan") return not_macvlan(*d.type);
  // ip would name the link "macvlan%d" itself; our daemon wants a name.
  const std::optional<std::string>& name = d.name ? d.name : d.dev;
  if (!name) {
    return ParseError{kExitUsage, "Not enough information: \"name\" argument is required.\n"};
  }
  if (auto e = parse_macvlan_options(c, d)) return *e;

  // What the kernel would refuse, in about the kernel's order: attribute
  // policy, the type's validate(), the MTU, then newlink().
  if (name->size() >= kIfNameSize) {
    // Only a name given as "dev" gets here: ip checks "name" itself.
    return ParseError{kExitRefused, "Error: Attribute failed policy validation.\n"};
  }
  if (auto e = check_like_kernel(d)) return *e;
  if (auto e = check_mtu(d)) return *e;
  if (!d.link) {
    // ip lets the kernel answer "Invalid argument": that line, then why.
    return ParseError{kExitRefused,
                      "RTNETLINK answers: Invalid argument\n"
                      "umacvlan: a macvlan link needs a lower device (\"link DEVICE\").\n"};
  }
  // ip looks the lower up itself; an empty name names no device.
  if (d.link->empty()) return ParseError{kExitSyntax, "Cannot find device \"\"\n"};
  // The source-list operation is checked against the new link's mode
  // (vepa when none is given).
  if (d.macaddr_mode != core::SourceOp::kNone &&
      d.mode.value_or(core::Mode::kVepa) != core::Mode::kSource) {
    return rtnetlink("Invalid argument");
  }
  if (*name == "." || *name == ".." || name->find(':') != std::string::npos) {
    return rtnetlink("Invalid argument");
  }

  LinkRequest r;
  r.op = LinkOp::kAdd;
  r.name = *name;
  r.link = *d.link;
  r.type_macvlan = true;
  fill_common(d, &r);
  fill_macvlan(d, &r);
  return r;
}

LinkCommand parse_set(Cursor& c) {
  Draft d;
  if (auto e = parse_generic(c, d, kSetRules, /*stop_at_type=*/true)) return *e;
  if (!d.dev)
    return ParseError{kExitUsage, "Not enough information: \"dev\" argument is required.\n"};
  if (d.type) {
    if (*d.type != "macvlan") return not_macvlan(*d.type);
    if (auto e = parse_macvlan_options(c, d)) return *e;
  }
  if (auto e = check_like_kernel(d)) return *e;
  if (auto e = check_mtu(d)) return *e;

  LinkRequest r;
  r.op = LinkOp::kSet;
  r.name = *d.dev;
  r.type_macvlan = d.type.has_value();
  fill_common(d, &r);
  fill_macvlan(d, &r);
  return r;
}

LinkCommand parse_delete(Cursor& c) {
  Draft d;
  if (auto e = parse_generic(c, d, kDeleteRules, /*stop_at_type=*/false)) return *e;
  if (!d.dev)
    return ParseError{kExitUsage, "Not enough information: \"dev\" argument is required.\n"};
  if (d.type && *d.type != "macvlan") return not_macvlan(*d.type);
  LinkRequest r;
  r.op = LinkOp::kDelete;
  r.name = *d.dev;
  r.type_macvlan = d.type.has_value();
  return r;
}

LinkCommand parse_show(Cursor& c) {
  Draft d;
  while (!c.done()) {
    const std::string& word = c.take();
    if (const Rule* rule = find_rule(kShowRules, word)) {
      if (auto e = rule->handle(c, d)) return *e;
      continue;
    }
    if (d.dev) return garbage(word);
    d.dev = word;
  }
  if (d.type && *d.type != "macvlan") return not_macvlan(*d.type);
  LinkRequest r;
  r.op = LinkOp::kShow;
  r.name = d.dev.value_or("");
  r.type_macvlan = d.type.has_value();
  return r;
}

LinkCommand parse_help(Cursor& c) {
  if (!c.done() && c.peek() == "macvlan") return HelpText{macvlan_usage()};
  return ParseError{kExitUsage, link_usage()};
}

using CommandParser = LinkCommand (*)(Cursor&);

struct Command {
  std::string_view word;
  CommandParser parse;
};

constexpr Command kCommands[] = {
    {"add", &parse_add},   {"set", &parse_set},   {"delete", &parse_delete}, {"del", &parse_delete},
    {"show", &parse_show}, {"list", &parse_show}, {"lst", &parse_show},      {"help", &parse_help},
};

}  // namespace

LinkCommand parse_link_command(const std::vector<std::string>& args) {
  Cursor c(args);
  if (c.done()) return parse_show(c);
  const std::string& word = c.take();
  for (const Command& command : kCommands) {
    if (command.word == word) return command.parse(c);
  }
  return ParseError{kExitUsage,
                    fmt::format("Command \"{}\" is unknown, try \"umacvlan link help\".\n", word)};
}

std::string link_usage() {
  return "Usage: umacvlan link add link DEVICE [ name ] NAME\n"
         "                         [ address LLADDR ] [ mtu MTU ] [ up | down ]\n"
         "                         type macvlan [ MACVLAN_OPTIONS ]\n"
         "       umacvlan link set [ dev ] DEVICE [ up | down ]\n"
         "                         [ address LLADDR ] [ mtu MTU ]\n"
         "                         [ type macvlan [ MACVLAN_OPTIONS ] ]\n"
         "       umacvlan link { delete | del } [ dev ] DEVICE\n"
         "       umacvlan link [ { show | list | lst } [ [ dev ] DEVICE ] [ type macvlan ] ]\n"
         "       umacvlan link help [ macvlan ]\n"
         "\n"
         "MACVLAN_OPTIONS: see \"umacvlan link help macvlan\"\n";
}

std::string macvlan_usage() {
  // The first line is ip's (iproute2 6.1), word for word: scripts match it.
  return "Usage: ... macvlan mode MODE [flag MODE_FLAG] MODE_OPTS [bcqueuelen BC_QUEUE_LEN]\n"
         "                  [ nopromisc ] [ nodst ] [ bclim BC_LIMIT ] [ spoofchk { on | off } ]\n"
         "                  [ hostaccess { on | off } ] [ macnat { on | off } ]\n"
         "                  [ macnat_ageing SECONDS ]\n"
         "\n"
         "MODE: private | vepa | bridge | passthru | source   (default: vepa)\n"
         "MODE_FLAG: null | nopromisc | nodst\n"
         "    nopromisc: mode passthru only: leave the lower's promiscuity alone\n"
         "    nodst: (meaningful in mode source) a frame from a listed source reaches\n"
         "           only the source-mode links\n"
         "SOURCE_OPTS: for mode \"source\", one operation on the list of source addresses:\n"
         "    macaddr { { add | del } LLADDR | set [ LLADDR ... ] | flush }\n"
         "    (given more than once, the last operation wins)\n"
         "BC_QUEUE_LEN: Length of the rx queue for broadcast/multicast: [0-4294967295]\n"
         "BC_LIMIT: Multicast groups with more subscribers than this are delivered\n"
         "          through the queue, the others at once; -1 queues none:\n"
         "          [-2147483648-2147483647]\n"
         "spoofchk: (umacvlan's own; default off) on: frames the link sends with a\n"
         "          source address not its own are dropped\n"
         "hostaccess: (umacvlan's own, for the whole port; default off) on: the lower's\n"
         "          own stack and the port's bridge devices reach each other, through\n"
         "          a device LOWER.host and a host route per device address; also\n"
         "          \"link set dev LOWER type macvlan hostaccess { on | off }\"\n"
         "macnat: (umacvlan's own, for the whole port; default off) on: for a lower that\n"
         "          accepts only its own MAC as a source (a Wi-Fi station): frames leave\n"
         "          the lower with the lower's MAC, and those arriving for it go to the\n"
         "          device owning their destination IP address; also\n"
         "          \"link set dev LOWER type macvlan macnat { on | off }\"\n"
         "SECONDS: how long macnat remembers an address it learned from a device\n"
         "          without traffic: [1-86400] (default 300)\n";
}

}  // namespace umacvlan::cli
