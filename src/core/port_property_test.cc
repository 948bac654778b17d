// Port: properties that must hold after every step of long random sequences
// of control operations (add/change/remove, lower events) interleaved with
// random frames (receive and transmit), for several fixed seeds.
//
// Checked after every step:
//  (a) only existing devices that are up are ever targets;
//  (b) a bridge-mode device never gets a copy of a multicast/broadcast frame
//      it sent with its own MAC as S (from the wire it does: another host
//      sharing the MAC, as the kernel's 2026 fix delivers);
//  (c) a refused request (Status not ok) leaves the port exactly as it was:
//      the full snapshot below, and the decisions the port makes for a probe
//      set of frames (run on copies, so hidden state is compared as well);
//  (d) no two up non-passthru devices share a MAC, and none has the lower's;
//  (e) lower_filter().unicast is exactly the set of up non-passthru MACs;
//  (f) a device is a target at most once per verdict (the one exception is
//      the kernel's: see SourceDeviceListingItsOwnMacGetsTwoCopies);
//  (g) a frame the parser refuses (runt, oversize) is dropped for that
//      reason, with no targets, not to the host and not to the wire;
//  (h) the D lookup agrees with the devices: a unicast frame to an up
//      device's MAC reaches exactly that device, one to a down device's MAC
//      reaches nobody (checked on a copy of the port).
//
// Frames sent by a device carry its own MAC or an outside host's MAC as S
// (a device bridging hosts behind it). A device sending with a sibling's MAC
// is left out on purpose: the kernel floods that to the sibling too
// (macvlan_broadcast() skips the sending device, not the MAC), so (b) does
// not hold for such frames in the kernel either. For the same reason (b) is
// not checked for frames "sent" by a down device (the kernel cannot send
// from one; its MAC may belong to an up sibling); (a) still is.
//
// Two address profiles: "valid" uses well-formed station addresses only;
// "wire" also puts 00:00:00:00:00:00 in S and D, as anything on the wire may.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/port.h"
#include "core/port_test_util.h"

namespace umacvlan::core {
namespace {

using testing::frame;
using testing::kBcast;
using testing::kGroup;
using testing::kGroup2;
using testing::kLowerMac;
using testing::kOutside;
using testing::kOutside2;
using testing::mac;
using testing::PortHarness;

// ================================================================ snapshot

struct DeviceSnapshot {
  DeviceId id = kNoDevice;
  std::string name;
  MacAddress mac;
  Mode mode = Mode::kVepa;
  std::uint16_t flags = 0;
  bool up = false;
  bool promisc = false;
  bool allmulti = false;
  std::uint32_t mtu = 0;
  std::uint32_t bcqueuelen = 0;
  std::vector<MacAddress> sources;
  std::vector<MacAddress> multicast;
  bool spoofchk = false;
  bool operator==(const DeviceSnapshot&) const = default;
};

struct PortSnapshot {
  // lower()
  std::string lower_name;
  MacAddress lower_mac;
  std::uint32_t lower_mtu = 0;
  bool lower_carrier = false;
  bool lower_promisc = false;
  bool lower_allmulti = false;
  bool lower_unicast_filter = false;
  std::vector<MacAddress> lower_multicast;
  // the port
  MacAddress perm_mac;
  bool passthru = false;
  std::size_t device_count = 0;
  std::vector<DeviceId> ids;
  std::uint32_t used_bcqueuelen = 0;
  std::int32_t bclim = 0;
  LowerFilter filter;
  std::vector<DeviceSnapshot> devices;
  bool operator==(const PortSnapshot&) const = default;
};

PortSnapshot snapshot(const Port& p) {
  PortSnapshot s;
  const LowerState& l = p.lower();
  s.lower_name = l.name;
  s.lower_mac = l.mac;
  s.lower_mtu = l.mtu;
  s.lower_carrier = l.carrier;
  s.lower_promisc = l.promisc;
  s.lower_allmulti = l.allmulti;
  s.lower_unicast_filter = l.unicast_filter;
  s.lower_multicast = l.multicast;
  s.perm_mac = p.lower_perm_mac();
  s.passthru = p.passthru();
  s.device_count = p.device_count();
  s.ids = p.device_ids();
  s.used_bcqueuelen = p.used_bcqueuelen();
  s.bclim = p.bclim();
  s.filter = p.lower_filter();
  for (DeviceId id : s.ids) {
    const Device* d = p.device(id);
    if (d == nullptr) continue;  // caught by the comparison: ids and devices disagree
    DeviceSnapshot ds;
    ds.id = id;
    ds.name = d->name;
    ds.mac = d->mac;
    ds.mode = d->mode;
    ds.flags = d->flags;
    ds.up = d->up;
    ds.promisc = d->promisc;
    ds.allmulti = d->allmulti;
    ds.mtu = d->mtu;
    ds.bcqueuelen = d->bcqueuelen;
    ds.sources = d->sources;
    ds.multicast = d->multicast;
    ds.spoofchk = d->spoofchk;
    s.devices.push_back(std::move(ds));
  }
  return s;
}

std::string macs(const std::vector<MacAddress>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0) s += ' ';
    s += v[i].to_string();
  }
  s += ']';
  return s;
}

// One line per item, so gtest's string diff points at what changed.
std::string describe(const PortSnapshot& s) {
  std::ostringstream o;
  o << "lower " << s.lower_name << " mac " << s.lower_mac.to_string() << " mtu " << s.lower_mtu
    << " carrier " << s.lower_carrier << " promisc " << s.lower_promisc << " allmulti "
    << s.lower_allmulti << " ucfilter " << s.lower_unicast_filter << " mc "
    << macs(s.lower_multicast) << "\n";
  o << "perm " << s.perm_mac.to_string() << " passthru " << s.passthru << " count "
    << s.device_count << " usedbcqueuelen " << s.used_bcqueuelen << " bclim " << s.bclim << "\n";
  o << "filter uc " << macs(s.filter.unicast) << " promisc " << s.filter.promisc << " allmulti "
    << s.filter.allmulti << " mc " << macs(s.filter.multicast) << "\n";
  o << "ids";
  for (DeviceId id : s.ids) o << " " << id;
  o << "\n";
  for (const DeviceSnapshot& d : s.devices) {
    o << "dev " << d.id << " " << d.name << " " << d.mac.to_string() << " " << to_string(d.mode)
      << " flags " << d.flags << " up " << d.up << " promisc " << d.promisc << " allmulti "
      << d.allmulti << " mtu " << d.mtu << " bcq " << d.bcqueuelen << " src " << macs(d.sources)
      << " mc " << macs(d.multicast) << " spoofchk " << d.spoofchk << "\n";
  }
  return o.str();
}

// ================================================================ decisions

struct Decision {
  std::vector<std::pair<DeviceId, Reason>> targets;
  bool to_host = false;
  bool to_wire = false;
  bool queued = false;
  DropReason drop = DropReason::kNone;
  bool operator==(const Decision&) const = default;
};

Decision decision(const DecisionBatch& b, const Verdict& v) {
  Decision d;
  for (const Target& t : b.targets(v)) d.targets.emplace_back(t.device, t.reason);
  d.to_host = v.to_host;
  d.to_wire = v.to_wire;
  d.queued = v.queued;
  d.drop = v.drop;
  return d;
}

std::string describe(const Decision& d) {
  std::ostringstream o;
  o << "{targets";
  for (const auto& [id, r] : d.targets) o << " " << id << "/" << static_cast<int>(r);
  o << " host " << d.to_host << " wire " << d.to_wire << " queued " << d.queued << " drop "
    << to_string(d.drop) << "}";
  return o.str();
}

const MacAddress kProbeSender = mac("02:00:00:00:bb:01");  // never on a source list
const std::vector<MacAddress> kGroups = {kGroup, kGroup2, mac("01:00:5e:00:00:01"),
                                         mac("33:33:ff:00:00:01")};
const std::vector<MacAddress> kDevPool = {mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"),
                                          mac("02:00:00:00:00:03"), mac("02:00:00:00:00:04"),
                                          mac("02:00:00:00:00:05"), mac("02:00:00:00:00:06")};

// What the port decides for a fixed set of frames, one burst per frame. The
// frame set is built from `macs_from` (the state before a refused request),
// so both sides see the same frames.
std::vector<Decision> probe(Port p, const PortSnapshot& macs_from) {
  std::vector<MacAddress> unicast = kDevPool;
  unicast.insert(unicast.end(), {kLowerMac, kOutside, kOutside2, kProbeSender, MacAddress()});
  for (const DeviceSnapshot& d : macs_from.devices) unicast.push_back(d.mac);
  std::vector<MacAddress> dsts = unicast;
  dsts.insert(dsts.end(), kGroups.begin(), kGroups.end());
  dsts.push_back(kBcast);
  std::vector<Decision> out;
  DecisionBatch b;
  for (const MacAddress& s : unicast) {
    for (const MacAddress& d : dsts) {
      b.clear();
      p.receive(frame(d, s), b);
      out.push_back(decision(b, b.back()));
    }
  }
  for (const DeviceSnapshot& from : macs_from.devices) {
    for (const MacAddress& d : dsts) {
      b.clear();
      p.transmit(from.id, frame(d, from.mac), b);
      out.push_back(decision(b, b.back()));
    }
  }
  return out;
}

// ================================================================ properties

// (d), (e), (h). Empty when they hold.
std::string check_state(const Port& p) {
  std::ostringstream err;
  std::map<MacAddress, DeviceId> up_macs;
  std::vector<MacAddress> want_uc;
  for (DeviceId id : p.device_ids()) {
    const Device* d = p.device(id);
    if (d == nullptr) return "device_ids() lists " + std::to_string(id) + " but device() is null";
    if (!d->up || d->mode == Mode::kPassthru) continue;
    want_uc.push_back(d->mac);
    if (d->mac == p.lower().mac) err << "(d) up device " << id << " has the lower's MAC\n";
    if (auto [it, fresh] = up_macs.emplace(d->mac, id); !fresh) {
      err << "(d) up devices " << it->second << " and " << id << " share " << d->mac.to_string()
          << "\n";
    }
  }
  std::sort(want_uc.begin(), want_uc.end());
  want_uc.erase(std::unique(want_uc.begin(), want_uc.end()), want_uc.end());
  if (p.lower_filter().unicast != want_uc) {
    err << "(e) lower_filter().unicast " << macs(p.lower_filter().unicast) << " != up MACs "
        << macs(want_uc) << "\n";
  }

  // (h) on a copy.
  Port c = p;
  DecisionBatch b;
  for (DeviceId id : p.device_ids()) {
    const Device* d = p.device(id);
    b.clear();
    c.receive(frame(d->mac, kProbeSender), b);
    const Decision got = decision(b, b.back());
    Decision want;
    if (p.passthru()) {
      if (d->up) {
        want.targets = {{id, Reason::kUnicast}};
      } else {
        want.drop = DropReason::kPassthruDown;
      }
    } else if (d->up && d->mode != Mode::kSource) {
      want.targets = {{id, Reason::kUnicast}};
    } else {
      auto it = up_macs.find(d->mac);
      if (it != up_macs.end() && it->second != id) continue;  // an up sibling holds this MAC
      // An up source-mode device is not a D match, and a down device is not
      // in the lookup: either way the frame is for the lower's own stack.
      want.to_host = true;
    }
    if (!(got == want)) {
      err << "(h) unicast to device " << id << " " << d->mac.to_string() << " gave "
          << describe(got) << ", want " << describe(want) << "\n";
    }
  }
  return err.str();
}

// (a), (b), (f), (g) for one verdict. Empty when they hold.
// `sender` is the transmitting device, kNoDevice for a received frame.
std::string check_verdict(const Port& p, const std::vector<std::uint8_t>& bytes, DeviceId sender,
                          const DecisionBatch& b, const Verdict& v) {
  std::ostringstream err;
  const Decision got = decision(b, v);
  FrameView f;
  const DropReason parsed = FrameView::parse(bytes, &f);
  if (parsed != DropReason::kNone) {  // (g)
    if (got.drop != parsed || !got.targets.empty() || got.to_host || got.to_wire) {
      err << "(g) unparsable frame (" << to_string(parsed) << ", " << bytes.size()
          << " bytes) gave " << describe(got) << "\n";
    }
    return err.str();
  }
  // A down device cannot send in the kernel; if the engine is asked to, (b)
  // is moot (its MAC may be an up sibling's), but (a) still holds.
  const Device* from = p.device(sender);
  const bool check_b = from != nullptr && from->up;
  std::map<DeviceId, std::vector<Reason>> seen;
  for (const auto& [id, reason] : got.targets) {
    const Device* d = p.device(id);
    if (d == nullptr || !d->up) {  // (a)
      err << "(a) target " << id << (d == nullptr ? " does not exist" : " is down") << "\n";
      continue;
    }
    if (check_b && f.dst.is_multicast() && d->mode == Mode::kBridge && d->mac == f.src) {  // (b)
      err << "(b) bridge device " << id << " got its own multicast back\n";
    }
    seen[id].push_back(reason);
  }
  for (auto& [id, reasons] : seen) {  // (f)
    if (reasons.size() == 1) continue;
    // The kernel's one double delivery: a source-mode device whose source
    // list holds its own MAC gets the source copy and the reflected frame.
    const Device* d = p.device(id);
    std::sort(reasons.begin(), reasons.end());
    const bool kernel_double =
        reasons == std::vector<Reason>{Reason::kSourceCopy, Reason::kReflect} &&
        d->mode == Mode::kSource && d->mac == f.src &&
        std::binary_search(d->sources.begin(), d->sources.end(), d->mac);
    if (!kernel_double) err << "(f) device " << id << " is a target " << reasons.size() << "x\n";
  }
  if (!err.str().empty()) err << "  verdict " << describe(got) << "\n";
  return err.str();
}

// ================================================================ the sequence

struct SequenceRow {
  const char* profile;
  std::uint64_t seed;
  bool wire_addresses;
};

class Sequence {
 public:
  Sequence(std::uint64_t seed, bool wire, bool unicast_filter)
      : rng_(seed), wire_(wire), port_(PortHarness::make_lower(unicast_filter)) {}

  // Runs `steps` random steps; the first failed property ends the run.
  void run(int steps) {
    add_device(/*must_succeed=*/true);
    for (step_ = 0; step_ < steps; ++step_) {
      const unsigned dice = u(100);
      if (dice < 40) {
        frames();
      } else if (dice < 52) {
        add_device(false);
      } else if (dice < 72) {
        change_device();
      } else if (dice < 90) {
        toggle_up();
      } else if (dice < 96) {
        remove_device();
      } else if (dice < 97) {
        remove_all();
      } else {
        lower_event();
      }
      if (failed_) return;
      check(check_state(port_));
      if (failed_) return;
    }
  }

  // How much of the ground the run covered (for the coverage assertions).
  std::map<std::string, std::uint64_t> stats;

 private:
  unsigned u(unsigned n) { return static_cast<unsigned>(rng_() % n); }
  bool chance(unsigned pct) { return u(100) < pct; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[u(static_cast<unsigned>(v.size()))];
  }
  MacAddress outside() { return chance(50) ? kOutside : kOutside2; }

  void log(std::string s) {
    history_.push_back("step " + std::to_string(step_) + ": " + std::move(s));
    if (history_.size() > 30) history_.pop_front();
  }
  void check(const std::string& err) {
    if (err.empty() || failed_) return;
    failed_ = true;
    std::string h;
    for (const std::string& s : history_) h += "  " + s + "\n";
    ADD_FAILURE() << "step " << step_ << ":\n"
                  << err << "recent steps:\n"
                  << h << "port now:\n"
                  << describe(snapshot(port_));
  }

  // ---- random values ----
  MacAddress any_address() {
    const unsigned d = u(100);
    if (d < 65) return pick(kDevPool);
    if (d < 75) return port_.lower().mac;
    if (d < 82) return MacAddress();   // refused: zero
    if (d < 86) return pick(kGroups);  // refused: multicast
    if (d < 88) return kBcast;         // refused: broadcast
    if (d < 94) return mac("02:00:00:00:00:07");
    return MacAddress::random_local(rng_());
  }
  std::vector<MacAddress> source_addrs() {
    std::vector<MacAddress> v;
    const unsigned n = u(4);
    for (unsigned i = 0; i < n; ++i) {
      const unsigned d = u(100);
      if (d < 30)
        v.push_back(outside());
      else if (d < 70)
        v.push_back(pick(kDevPool));  // device MACs, its own included
      else if (d < 85)
        v.push_back(port_.lower().mac);
      else if (d < 92)
        v.push_back(kOutside);
      else if (d < 96)
        v.push_back(MacAddress());  // refused
      else
        v.push_back(kGroup);  // refused
    }
    return v;
  }
  SourceListChange source_change() {
    static const std::vector<SourceOp> kOps = {SourceOp::kAdd, SourceOp::kAdd, SourceOp::kDel,
                                               SourceOp::kSet, SourceOp::kFlush};
    SourceListChange c;
    c.op = pick(kOps);
    if (c.op != SourceOp::kFlush) c.addrs = source_addrs();
    return c;
  }
  Mode any_mode(bool with_passthru) {
    static const std::vector<Mode> kModes = {Mode::kPrivate, Mode::kVepa,   Mode::kBridge,
                                             Mode::kSource,  Mode::kBridge, Mode::kVepa};
    if (with_passthru && chance(10)) return Mode::kPassthru;
    return pick(kModes);
  }
  std::uint16_t flags_for(Mode m) {
    if (chance(12)) return static_cast<std::uint16_t>(u(5));  // often refused
    if (m == Mode::kPassthru) return chance(50) ? kFlagNoPromisc : 0;
    if (m == Mode::kSource) return chance(25) ? kFlagNoDst : 0;
    return 0;
  }
  std::uint32_t any_mtu() {
    static const std::vector<std::uint32_t> kMtus = {60, 67, 68, 576, 1280, 1500, 1501, 9000};
    return pick(kMtus);
  }
  std::uint32_t any_bcqueuelen() {
    static const std::vector<std::uint32_t> kLens = {0, 1, 2, 3, 1000, 5000};
    return pick(kLens);
  }
  std::int32_t any_bclim() {
    static const std::vector<std::int32_t> kLims = {-1, 0, 1, 2, 3, 100};
    return pick(kLims);
  }
  std::vector<MacAddress> any_groups() {
    std::vector<MacAddress> v;
    for (const MacAddress& g : kGroups) {
      if (chance(40)) v.push_back(g);
    }
    if (chance(10) && !v.empty()) v.push_back(v.front());  // duplicates are folded
    return v;
  }
  std::vector<DeviceId> ids() const { return port_.device_ids(); }
  // An id the port does not have: past the end, or a freed slot.
  DeviceId absent_id() {
    const std::vector<DeviceId> have = ids();
    DeviceId id = 0;
    if (chance(50)) {
      while (std::find(have.begin(), have.end(), id) != have.end()) ++id;
    } else {
      id = (have.empty() ? 0 : have.back() + 1) + u(3);
    }
    return id;
  }
  DeviceId some_id() {
    const std::vector<DeviceId> have = ids();
    if (have.empty() || chance(5)) return absent_id();
    return pick(have);
  }

  // ---- control steps ----
  // A refused request must leave the port as it was: snapshot and decisions.
  template <class Fn>
  void control(const std::string& what, Fn&& fn) {
    const Port before_copy = port_;
    const PortSnapshot before = snapshot(port_);
    const Status st = fn();
    log(what + " -> " + (st.ok() ? "ok" : std::to_string(st.err) + " " + st.message));
    ++stats[st.ok() ? "ok" : "refused"];
    if (st.ok()) return;
    if (st.message.empty()) check("refused without a message: " + what + "\n");
    const PortSnapshot after = snapshot(port_);
    if (!(after == before)) {
      check("(c) refused request changed the port:\n--- before\n" + describe(before) +
            "--- after\n" + describe(after));
      return;
    }
    const std::vector<Decision> want = probe(before_copy, before);
    const std::vector<Decision> got = probe(port_, before);
    for (std::size_t i = 0; i < want.size() && i < got.size(); ++i) {
      if (!(want[i] == got[i])) {
        check("(c) refused request changed decision #" + std::to_string(i) + ": " +
              describe(want[i]) + " -> " + describe(got[i]) + "\n");
        return;
      }
    }
  }

  void add_device(bool must_succeed) {
    if (port_.device_count() >= 7 && !must_succeed) return remove_device();
    DeviceSpec s;
    s.name = "d" + std::to_string(next_name_++);
    if (must_succeed) {
      s.mode = Mode::kBridge;
      s.address = kDevPool[0];
    } else {
      if (chance(85)) s.mode = any_mode(/*with_passthru=*/port_.device_count() == 0 || chance(10));
      const Mode m = s.mode.value_or(Mode::kVepa);
      s.flags = flags_for(m);
      if (chance(80)) s.address = any_address();
      if (chance(25)) s.mtu = any_mtu();
      if (chance(25)) s.bcqueuelen = any_bcqueuelen();
      if (chance(25)) s.bclim = any_bclim();
      if (m == Mode::kSource ? chance(60) : chance(4)) s.macaddr = source_change();
    }
    std::ostringstream what;
    what << "add " << s.name << " mode " << (s.mode ? to_string(*s.mode) : "-") << " flags "
         << s.flags << " addr " << (s.address ? s.address->to_string() : "-") << " mtu "
         << (s.mtu ? std::to_string(*s.mtu) : "-") << " bcq "
         << (s.bcqueuelen ? std::to_string(*s.bcqueuelen) : "-") << " bclim "
         << (s.bclim ? std::to_string(*s.bclim) : "-") << " macaddr "
         << static_cast<int>(s.macaddr.op) << macs(s.macaddr.addrs);
    const std::uint64_t bits = rng_();
    DeviceId id = kNoDevice;
    control(what.str(), [&] {
      Status st = port_.add_device(s, bits, &id);
      if (st.ok()) {
        const Device* d = port_.device(id);
        if (d == nullptr || d->up || d->name != s.name) check("add: the new device is wrong\n");
      }
      if (must_succeed && !st.ok()) check("the first add failed: " + st.message + "\n");
      return st;
    });
  }

  void change_device() {
    const DeviceId id = some_id();
    const Device* cur = port_.device(id);
    const Mode cur_mode = cur ? cur->mode : Mode::kVepa;
    DeviceChange c;
    std::ostringstream what;
    what << "change " << id;
    if (chance(15)) {
      c.mode = any_mode(chance(20));
      what << " mode " << to_string(*c.mode);
    }
    const Mode final_mode = c.mode.value_or(cur_mode);
    if (chance(12)) {
      c.flags = flags_for(final_mode);
      what << " flags " << *c.flags;
    }
    if (chance(10)) {
      c.bcqueuelen = any_bcqueuelen();
      what << " bcq " << *c.bcqueuelen;
    }
    if (chance(10)) {
      c.bclim = any_bclim();
      what << " bclim " << *c.bclim;
    }
    if (final_mode == Mode::kSource ? chance(40) : chance(5)) {
      c.macaddr = source_change();
      what << " macaddr " << static_cast<int>(c.macaddr.op) << macs(c.macaddr.addrs);
    }
    if (chance(15)) {
      c.address = any_address();
      what << " addr " << c.address->to_string();
    }
    if (chance(10)) {
      c.mtu = any_mtu();
      what << " mtu " << *c.mtu;
    }
    if (chance(25)) {
      c.up = chance(60);
      what << " up " << *c.up;
    }
    if (chance(12)) {
      c.promisc = chance(50);
      what << " promisc " << *c.promisc;
    }
    if (chance(12)) {
      c.allmulti = chance(50);
      what << " allmulti " << *c.allmulti;
    }
    if (chance(30)) {
      c.multicast = any_groups();
      what << " mc " << macs(*c.multicast);
    }
    control(what.str(), [&] { return port_.change_device(id, c); });
  }

  void toggle_up() {
    const DeviceId id = some_id();
    const Device* d = port_.device(id);
    DeviceChange c;
    c.up = d ? !d->up : true;
    control("set " + std::to_string(id) + (*c.up ? " up" : " down"),
            [&] { return port_.change_device(id, c); });
  }

  void remove_device() {
    const DeviceId id = some_id();
    const bool exists = port_.device(id) != nullptr;
    log("remove " + std::to_string(id) + (exists ? "" : " (absent)"));
    if (exists) {
      port_.remove_device(id);
      if (port_.device(id) != nullptr) check("remove: the device is still there\n");
      return;
    }
    // Removing a device the port does not have changes nothing.
    const PortSnapshot before = snapshot(port_);
    port_.remove_device(id);
    if (!(snapshot(port_) == before)) check("(c) removing an absent device changed the port\n");
  }

  void remove_all() {
    log("remove all");
    for (DeviceId id : ids()) port_.remove_device(id);
    if (port_.device_count() != 0 || port_.passthru()) check("remove all left devices\n");
  }

  void lower_event() {
    switch (u(4)) {
      case 0: {
        static const std::vector<std::uint32_t> kMtus = {1280, 1500, 1500, 9000};
        const std::uint32_t mtu = pick(kMtus);
        log("lower mtu " + std::to_string(mtu));
        port_.lower_mtu_changed(mtu);
        for (DeviceId id : ids()) {
          if (port_.device(id)->mtu > mtu) check("a device MTU is above the lower's\n");
        }
        break;
      }
      case 1: {
        const bool carrier = chance(70);
        log(std::string("lower carrier ") + (carrier ? "on" : "off"));
        port_.lower_carrier_changed(carrier);
        break;
      }
      case 2: {
        const bool promisc = chance(20), allmulti = chance(20);
        log("lower flags promisc " + std::to_string(promisc) + " allmulti " +
            std::to_string(allmulti));
        port_.lower_flags_changed(promisc, allmulti);
        break;
      }
      default: {
        std::vector<MacAddress> g = any_groups();
        log("lower mc " + macs(g));
        port_.lower_multicast_changed(std::move(g));
        break;
      }
    }
  }

  // ---- data steps ----
  MacAddress device_mac_or(MacAddress fallback) {
    const std::vector<DeviceId> have = ids();
    return have.empty() ? fallback : port_.device(pick(have))->mac;
  }
  MacAddress frame_dst() {
    const unsigned d = u(100);
    if (wire_ && d < 6) return MacAddress();
    if (d < 30) return device_mac_or(kOutside);
    if (d < 36) return port_.lower().mac;
    if (d < 44) return pick(kDevPool);
    if (d < 52) return kOutside;
    if (d < 68) return kBcast;
    if (d < 92) return pick(kGroups);
    return MacAddress::random_local(rng_());
  }
  MacAddress frame_src_rx() {
    const unsigned d = u(100);
    if (wire_ && d < 8) return MacAddress();
    if (d < 40) return device_mac_or(kOutside);
    if (d < 60) return outside();
    if (d < 75) return pick(kDevPool);
    if (d < 85) return port_.lower().mac;
    return MacAddress::random_local(rng_());
  }
  std::vector<std::uint8_t> make_frame(MacAddress dst, MacAddress src) {
    const unsigned d = u(1000);
    if (d < 40) {  // runt: 0..13 random bytes
      std::vector<std::uint8_t> f(u(14));
      for (auto& b : f) b = static_cast<std::uint8_t>(rng_());
      ++stats["runt"];
      return f;
    }
    if (d < 60) {  // a tag longer than the frame
      const bool qinq = chance(50);
      std::vector<std::uint8_t> f = frame(dst, src, qinq ? 0x88a8 : 0x8100, 8);
      f[16] = 0x81;
      f[17] = 0x00;
      f.resize(qinq ? 18 + u(4) : 14 + u(4));
      ++stats["runt"];
      return f;
    }
    if (d < 62) {
      ++stats["oversize"];
      return frame(dst, src, 0x0800, kMaxFrameSize + 1 - kEthHeaderSize);
    }
    if (d < 110) return frame(dst, src, kEthertypePause);
    if (d < 180) {  // tagged
      std::vector<std::uint8_t> f = frame(dst, src, 0x8100, 50);
      f[16] = 0x08;
      f[17] = 0x00;
      return f;
    }
    return frame(dst, src, 0x0800, u(1400));
  }

  void frames() {
    batch_.clear();
    const unsigned n = 1 + u(4);
    std::vector<std::vector<std::uint8_t>> sent;
    std::vector<DeviceId> senders;
    std::ostringstream what;
    what << "frames:";
    for (unsigned i = 0; i < n; ++i) {
      if (chance(55)) {
        const MacAddress dst = frame_dst(), src = frame_src_rx();
        sent.push_back(make_frame(dst, src));
        senders.push_back(kNoDevice);
        port_.receive(sent.back(), batch_);
        what << " rx " << src.to_string() << ">" << dst.to_string();
      } else {
        const DeviceId from = some_id();
        const Device* d = port_.device(from);
        const MacAddress src = (d != nullptr && chance(85)) ? d->mac : outside();
        const MacAddress dst = frame_dst();
        sent.push_back(make_frame(dst, src));
        senders.push_back(from);
        port_.transmit(from, sent.back(), batch_);
        what << " tx#" << from << " " << src.to_string() << ">" << dst.to_string();
      }
      what << "(" << sent.back().size() << "B)";
    }
    log(what.str());
    if (batch_.size() != n) check("the batch has " + std::to_string(batch_.size()) + " verdicts\n");
    for (unsigned i = 0; i < n && !failed_; ++i) {
      const Verdict& v = batch_[i];
      check(check_verdict(port_, sent[i], senders[i], batch_, v));
      stats["targets"] += v.count;
      if (v.drop != DropReason::kNone) ++stats["drop_" + std::string(to_string(v.drop))];
      for (const Target& t : batch_.targets(v))
        ++stats["reason_" + std::to_string(static_cast<int>(t.reason))];
    }
  }

  std::mt19937_64 rng_;
  bool wire_;
  Port port_;
  DecisionBatch batch_;
  int step_ = 0;
  int next_name_ = 0;
  bool failed_ = false;
  std::deque<std::string> history_;
};

void PrintTo(const SequenceRow& r, std::ostream* os) {
  *os << r.profile << " seed " << r.seed;
}

class PortProperties : public ::testing::TestWithParam<SequenceRow> {};

TEST_P(PortProperties, HoldAfterEveryStep) {
  const SequenceRow& row = GetParam();
  std::map<std::string, std::uint64_t> total;
  // Both kinds of lower: with a unicast filter and without (a veth).
  for (bool unicast_filter : {true, false}) {
    SCOPED_TRACE(std::string("seed ") + std::to_string(row.seed) + " unicast_filter " +
                 std::to_string(unicast_filter));
    Sequence s(row.seed + (unicast_filter ? 0 : 1000), row.wire_addresses, unicast_filter);
    s.run(10000);
    if (HasFailure()) return;
    for (const auto& [k, v] : s.stats) total[k] += v;
  }
  // The run reached what it claims to check (no vacuous pass).
  for (const char* k : {"ok", "refused", "runt", "targets", "reason_0", "reason_1", "reason_2",
                        "reason_3", "drop_runt", "drop_nodst", "drop_bc_queue_full",
                        "drop_no_subscriber", "drop_unknown_sender", "drop_pause"}) {
    EXPECT_GT(total[k], 0u) << "never saw " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Seeds, PortProperties,
    ::testing::Values(SequenceRow{"valid", 0x9e3779b97f4a7c15ULL, false},
                      SequenceRow{"valid", 1, false}, SequenceRow{"valid", 20240601, false},
                      SequenceRow{"valid", 0xdeadbeef, false},
                      SequenceRow{"wire", 0x9e3779b97f4a7c15ULL, true},
                      SequenceRow{"wire", 1, true}, SequenceRow{"wire", 20240601, true},
                      SequenceRow{"wire", 0xdeadbeef, true}),
    [](const ::testing::TestParamInfo<SequenceRow>& i) {
      return std::string(i.param.profile) + "_seed" + std::to_string(i.param.seed);
    });

// ================================================================ fixed cases

// The snapshot behind (c) sees every kind of change, so (c) can fail.
TEST(PortSnapshot, SeesEveryChange) {
  PortHarness h;
  const DeviceId a = h.add("a", Mode::kBridge, 1);
  const DeviceId s = h.add("s", Mode::kSource, 2, true, 0, {kOutside});
  h.add("v", Mode::kVepa, 3, false);
  const Port base = h.port();
  const PortSnapshot before = snapshot(base);
  struct Mutation {
    const char* name;
    std::function<void(Port&)> apply;
  };
  auto change = [](DeviceId id, auto setter) {
    return [id, setter](Port& p) {
      DeviceChange c;
      setter(c);
      ASSERT_TRUE(p.change_device(id, c).ok());
    };
  };
  const std::vector<Mutation> mutations = {
      {"mode", change(a, [](DeviceChange& c) { c.mode = Mode::kVepa; })},
      {"flags", change(s, [](DeviceChange& c) { c.flags = kFlagNoDst; })},
      {"bcqueuelen", change(a, [](DeviceChange& c) { c.bcqueuelen = 5000; })},
      {"bclim", change(a, [](DeviceChange& c) { c.bclim = 7; })},
      {"sources", change(s,
                         [](DeviceChange& c) {
                           c.macaddr = {SourceOp::kAdd, {kOutside2}};
                         })},
      {"address", change(a, [](DeviceChange& c) { c.address = mac("02:00:00:00:00:09"); })},
      {"mtu", change(a, [](DeviceChange& c) { c.mtu = 1400; })},
      {"down", change(a, [](DeviceChange& c) { c.up = false; })},
      {"promisc", change(a, [](DeviceChange& c) { c.promisc = true; })},
      {"allmulti", change(a, [](DeviceChange& c) { c.allmulti = true; })},
      {"multicast", change(a, [](DeviceChange& c) { c.multicast = {{kGroup}}; })},
      {"spoofchk", change(a, [](DeviceChange& c) { c.spoofchk = true; })},
      {"remove", [a](Port& p) { p.remove_device(a); }},
      {"add",
       [](Port& p) {
         DeviceSpec spec;
         spec.name = "new";
         DeviceId id;
         ASSERT_TRUE(p.add_device(spec, 42, &id).ok());
       }},
      {"lower_mtu", [](Port& p) { p.lower_mtu_changed(1400); }},
      {"lower_carrier", [](Port& p) { p.lower_carrier_changed(false); }},
      {"lower_flags", [](Port& p) { p.lower_flags_changed(true, false); }},
      {"lower_multicast", [](Port& p) { p.lower_multicast_changed({kGroup2}); }},
  };
  for (const Mutation& m : mutations) {
    Port p = base;
    m.apply(p);
    EXPECT_FALSE(snapshot(p) == before) << m.name << " went unseen";
    EXPECT_NE(describe(snapshot(p)), describe(before)) << m.name << " is not described";
  }
}

// Frames with an all-zero S or D come from the wire like any other; no
// device has that address, so they must be handled as an outside host's.
TEST(PortZeroMac, FramesFromOrToTheZeroAddressAreOutsideFrames) {
  PortHarness h;
  const DeviceId p = h.add("p", Mode::kPrivate, 1, /*up=*/false);  // slot 0, down
  h.add("v", Mode::kVepa, 2);
  ASSERT_EQ(p, 0u);
  const MacAddress zero;

  const testing::Outcome uc = h.rx(frame(zero, kOutside));
  EXPECT_TRUE(uc.devices.empty()) << "unicast to 00:00:00:00:00:00 reached a device";
  EXPECT_TRUE(uc.to_host);

  const testing::Outcome bc = h.rx(frame(kBcast, zero));
  EXPECT_EQ(bc.devices, testing::names({"v"})) << "broadcast from 00:00:00:00:00:00";
  EXPECT_TRUE(bc.to_host);
}

// Same frames on a port that has never had a device: the engine must not
// read a device slot that does not exist. Run in a child process, so a crash
// fails this test instead of ending the whole run.
TEST(PortZeroMacDeathTest, PortWithoutDevicesSurvivesZeroAddressFrames) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        Port p(PortHarness::make_lower(true));
        DecisionBatch b;
        p.receive(frame(MacAddress(), kOutside), b);  // unicast to 00:00:00:00:00:00
        p.receive(frame(kBcast, MacAddress()), b);    // broadcast from 00:00:00:00:00:00
        const bool ok =
            b.size() == 2 && b[0].count == 0 && b[0].to_host && b[1].count == 0 && b[1].to_host;
        std::exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// The kernel's one double delivery (drivers/net/macvlan.c,
// macvlan_handle_frame): macvlan_forward_source() gives a source-mode device
// whose list holds S a copy, then the reflect branch ("forward to original
// port") gives the same device the frame again because S is its own MAC.
TEST(PortKernelDoubleCopy, SourceDeviceListingItsOwnMacGetsTwoCopies) {
  PortHarness h;
  const DeviceId s = h.add("s", Mode::kSource, 1, true, 0, {mac("02:00:00:00:00:01")});
  h.batch().clear();
  h.port().receive(frame(kBcast, h.mac_of(s)), h.batch());
  const Verdict& v = h.batch().back();
  std::vector<Reason> reasons;
  for (const Target& t : h.batch().targets(v)) {
    EXPECT_EQ(t.device, s);
    reasons.push_back(t.reason);
  }
  EXPECT_EQ(reasons, (std::vector<Reason>{Reason::kSourceCopy, Reason::kReflect}));
  EXPECT_FALSE(v.to_host);
}

}  // namespace
}  // namespace umacvlan::core
