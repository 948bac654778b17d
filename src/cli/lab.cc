#include "cli/lab.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "cli/link_printer.h"

extern char** environ;

namespace umacvlan::cli {
namespace {

constexpr std::array<std::string_view, 5> kAllModes = {"private", "vepa", "bridge", "passthru",
                                                       "source"};

bool is_mode(std::string_view m) {
  return std::find(kAllModes.begin(), kAllModes.end(), m) != kAllModes.end();
}

LabUsageError wrong_argument(std::string_view arg, std::string_view why) {
  return {fmt::format("Error: argument \"{}\" is wrong: {}\n", arg, why)};
}

}  // namespace

// ================================================================= options

std::string lab_usage() {
  return "Usage: umacvlan [ -j [ -p ] ] lab [ --mode MODE ]... [ --with-kernel ] [ --no-drawbacks "
         "]\n"
         "                                  [ --keep ] [ --svg FILE ]\n"
         "       umacvlan lab --down\n"
         "       umacvlan lab help\n"
         "MODE := { private | vepa | bridge | passthru | source }   (default: all five)\n"
         "  --with-kernel   the same probes against the kernel's macvlan, side by side\n"
         "  --no-drawbacks  skip the drawbacks section\n"
         "  --keep          leave the lab running (enter it with ip netns exec ...)\n"
         "  --down          remove a lab left by --keep\n"
         "  --svg FILE      also write the pictures and paths as an SVG document\n";
}

std::variant<LabOptions, LabUsageError> parse_lab_options(const std::vector<std::string>& args) {
  LabOptions o;
  bool other = false;  // an option --down does not go with
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string word = args[i];
    std::optional<std::string> value;
    if (word.rfind("--", 0) == 0) {
      if (auto eq = word.find('='); eq != std::string::npos) {
        value = word.substr(eq + 1);
        word.resize(eq);
      }
    }
    auto take_value = [&]() -> std::optional<std::string> {
      if (value) return value;
      if (i + 1 < args.size()) return args[++i];
      return std::nullopt;
    };
    if (word == "help" || word == "-h" || word == "--help") {
      o.help = true;
    } else if (word == "--mode") {
      const auto m = take_value();
      if (!m) return LabUsageError{"Command line is not complete. Try option \"help\"\n"};
      if (!is_mode(*m))
        return wrong_argument(*m, "mode must be private, vepa, bridge, passthru or source");
      if (std::find(o.modes.begin(), o.modes.end(), *m) == o.modes.end()) o.modes.push_back(*m);
      other = true;
    } else if (word == "--svg") {
      const auto f = take_value();
      if (!f || f->empty())
        return LabUsageError{"Command line is not complete. Try option \"help\"\n"};
      o.svg_file = *f;
      other = true;
    } else if (value) {
      return wrong_argument(args[i], "this option takes no value");
    } else if (word == "--keep") {
      o.keep = other = true;
    } else if (word == "--down") {
      o.down = true;
    } else if (word == "--with-kernel") {
      o.with_kernel = other = true;
    } else if (word == "--no-drawbacks") {
      o.drawbacks = false;
      other = true;
    } else {
      return wrong_argument(args[i],
                            "expected --mode, --with-kernel, --no-drawbacks, --keep, --down or "
                            "--svg; try \"umacvlan lab help\"");
    }
  }
  if (o.down && other) return wrong_argument("--down", "--down takes no other option");
  if (o.modes.empty())
    for (std::string_view m : kAllModes) o.modes.emplace_back(m);
  return o;
}

// ============================================================ observations

std::vector<std::string> received_by(const Observation& o) {
  std::vector<std::string> out;
  bool outside = false, stack = false;
  for (const Reception& r : o.receptions) {
    if (r.who == "outside") {
      outside = true;
    } else if (r.who == "stack") {
      stack = true;
    } else if (std::find(out.begin(), out.end(), r.who) == out.end()) {
      out.push_back(r.who);
    }
  }
  if (outside) out.emplace_back("outside");
  if (o.wire) out.emplace_back("wire");
  if (stack) out.emplace_back("stack");
  return out;
}

namespace {

constexpr std::string_view kArrow = " ─▶ ";

std::string receiver_name(const Reception& r) {
  std::string name = r.who == "stack" ? "lower0 stack" : r.who;
  if (r.copies > 1) name += fmt::format(" (×{})", r.copies);
  return name;
}

}  // namespace

std::vector<std::string> probe_paths(const ProbeResult& probe, const Observation& o) {
  std::vector<std::string> lines;
  if (!o.ran) {
    lines.push_back("(not run" + (o.note.empty() ? std::string() : ": " + o.note) + ")");
    return lines;
  }
  auto join = [](std::initializer_list<std::string_view> parts) {
    std::string s;
    for (std::string_view p : parts) {
      if (!s.empty()) s += kArrow;
      s += p;
    }
    return s;
  };
  const bool from_outside = probe.from == "outside";
  const bool from_host = probe.from == "lower0";
  if (from_outside) {
    for (const Reception& r : o.receptions) {
      if (r.who == "outside") continue;
      lines.push_back(join({"outside", "switch", "lower0", receiver_name(r)}));
    }
    if (lines.empty()) {
      lines.push_back(o.hairpin ? join({"outside", "switch", "lower0", "✗ dropped"})
                                : join({"outside", "switch", "✗ dropped"}));
    }
    return lines;
  }
  const std::string from = from_host ? "lower0 stack" : probe.from;
  bool back = false;
  for (const Reception& r : o.receptions) {
    if (r.who == "outside" || r.via_switch) continue;
    lines.push_back(join({from, "port", receiver_name(r)}));
  }
  const std::string out =
      from_host ? join({from, "lower0", "switch"}) : join({from, "lower0", "switch"});
  for (const Reception& r : o.receptions) {
    if (r.who == "outside") lines.push_back(out + std::string(kArrow) + receiver_name(r));
  }
  for (const Reception& r : o.receptions) {
    if (r.who == "outside" || !r.via_switch) continue;
    back = true;
    lines.push_back(out + std::string(kArrow) + "(hairpin)" + std::string(kArrow) + "lower0" +
                    std::string(kArrow) + receiver_name(r));
  }
  if (o.wire && o.hairpin && !back) {
    lines.push_back(out + std::string(kArrow) + "(hairpin)" + std::string(kArrow) + "lower0" +
                    std::string(kArrow) + "✗ dropped");
  }
  const bool to_outside = std::any_of(o.receptions.begin(), o.receptions.end(),
                                      [](const Reception& r) { return r.who == "outside"; });
  if (o.wire && !o.hairpin && !to_outside) {
    lines.push_back(out + std::string(kArrow) + "✗ dropped (not sent back)");
  }
  if (!o.wire && lines.empty()) lines.push_back(from + std::string(kArrow) + "✗ dropped");
  return lines;
}

// ================================================================ pictures

namespace {

// A grid of glyphs (one UTF-8 string per cell), for box-drawing pictures.
class Canvas {
 public:
  void put(int x, int y, std::string glyph) {
    if (x < 0 || y < 0) return;
    if (static_cast<int>(rows_.size()) <= y) rows_.resize(y + 1);
    auto& row = rows_[y];
    if (static_cast<int>(row.size()) <= x) row.resize(x + 1, " ");
    row[x] = std::move(glyph);
  }
  void text(int x, int y, std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i)
      put(x + static_cast<int>(i), y, std::string(1, s[i]));
  }
  void box(int x, int y, int w, int h) {
    put(x, y, "┌");
    put(x + w - 1, y, "┐");
    put(x, y + h - 1, "└");
    put(x + w - 1, y + h - 1, "┘");
    for (int i = x + 1; i < x + w - 1; ++i) {
      put(i, y, "─");
      put(i, y + h - 1, "─");
    }
    for (int j = y + 1; j < y + h - 1; ++j) {
      put(x, j, "│");
      put(x + w - 1, j, "│");
    }
  }
  std::string str(std::string_view indent) const {
    std::string out;
    for (const auto& row : rows_) {
      std::string line(indent);
      for (const auto& g : row) line += g;
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

constexpr int kDevWidth = 20;
constexpr int kDevGap = 4;

}  // namespace

std::string render_topology(const ModeResult& mode) {
  Canvas c;
  const int n = std::max<int>(1, static_cast<int>(mode.devices.size()));
  const int total = n * kDevWidth + (n - 1) * kDevGap;
  const int mid = total / 2;
  const int bw = 30;
  const int bx = std::max(0, mid - bw / 2);
  // outside
  c.box(bx, 0, bw, 3);
  c.text(bx + 2, 1, "outside  xeth 10.77.0.1");
  c.put(mid, 2, "┬");
  c.put(mid, 3, "│");
  c.box(bx, 4, bw, 3);
  c.put(mid, 4, "┴");
  c.text(bx + 2, 5, "switch  br0 (swx, swp0)");
  c.put(mid, 6, "┬");
  c.put(mid, 7, "│");
  c.text(mid + 2, 7, "swp0: hairpin off | on");
  c.box(bx, 8, bw, 3);
  c.put(mid, 8, "┴");
  c.text(bx + 2, 9, "host  lower0 10.77.0.254");
  c.put(mid, 10, "┬");
  // the port fans out to the devices
  const int y = 11;
  std::vector<int> centers;
  for (int i = 0; i < n; ++i) centers.push_back(i * (kDevWidth + kDevGap) + kDevWidth / 2);
  if (n == 1) {
    c.put(mid, y, "│");
  } else {
    for (int x = centers.front(); x <= centers.back(); ++x) c.put(x, y, "─");
    c.put(centers.front(), y, "┌");
    c.put(centers.back(), y, "┐");
    for (int i = 1; i + 1 < n; ++i) c.put(centers[i], y, "┬");
    c.put(mid, y, mid == centers.front() ? "├" : (mid == centers.back() ? "┤" : "┴"));
    c.text(centers.back() + 2, y, "port (macvlan)");
  }
  for (int i = 0; i < n; ++i) {
    const int x = i * (kDevWidth + kDevGap);
    c.box(x, y + 1, kDevWidth, 5);
    c.put(centers[i], y + 1, "┴");
    if (i < static_cast<int>(mode.devices.size())) {
      const LabDevice& d = mode.devices[i];
      c.text(x + 2, y + 2, d.name + "  " + d.mode);
      c.text(x + 2, y + 3, d.ip);
      c.text(x + 2, y + 4, d.mac);
    }
  }
  for (std::size_t i = 0; i < mode.devices.size(); ++i) {
    if (!mode.devices[i].source_macs.empty()) {
      c.text(0, y + 6,
             mode.devices[i].name + " takes copies of frames from " +
                 mode.devices[i].source_macs.front() + " (outside)");
    }
  }
  return c.str("  ");
}

namespace {

std::string yes_no(const Observation& o) {
  if (!o.ran || !o.reachable) return "-";
  return *o.reachable ? "yes" : "no";
}

std::string pad(std::string_view s, std::size_t width) {
  // Width in glyphs: count UTF-8 lead bytes only.
  std::size_t glyphs = 0;
  for (unsigned char ch : s)
    if ((ch & 0xC0) != 0x80) ++glyphs;
  std::string out(s);
  if (glyphs < width) out.append(width - glyphs, ' ');
  return out;
}

}  // namespace

bool same_observation(const Observation& a, const Observation& b) {
  if (a.ran != b.ran || a.reachable != b.reachable || a.wire != b.wire || a.hairpin != b.hairpin)
    return false;
  if (a.receptions.size() != b.receptions.size()) return false;
  auto key = [](const Observation& o) {
    std::vector<std::string> k;
    for (const Reception& r : o.receptions)
      k.push_back(fmt::format("{}|{}|{}", r.who, r.via_switch, r.copies));
    std::sort(k.begin(), k.end());
    return k;
  };
  return key(a) == key(b);
}

std::string classify_difference(const ProbeResult& probe, const std::vector<LabDevice>& devices) {
  if (!probe.kernel || same_observation(probe.umacvlan, *probe.kernel)) return {};
  const auto sender = std::find_if(devices.begin(), devices.end(),
                                   [&](const LabDevice& d) { return d.name == probe.from; });
  if (sender == devices.end() || sender->mode != "bridge" || probe.dst_mac != "ff:ff:ff:ff:ff:ff")
    return {};
  Observation mine = probe.umacvlan;
  const auto own =
      std::find_if(mine.receptions.begin(), mine.receptions.end(),
                   [&](const Reception& r) { return r.who == probe.from && r.via_switch; });
  if (own == mine.receptions.end()) return {};
  mine.receptions.erase(own);
  if (!same_observation(mine, *probe.kernel)) return {};
  return "umacvlan follows the kernel's 2026 fix: a bridge device gets its own broadcast back "
         "from a hairpin switch (this 6.18 kernel drops it)";
}

namespace {

// "" when kernel and umacvlan agree (or there is no kernel column), "≈" for
// a difference umacvlan means (known_difference), "!" for any other.
std::string diff_mark(const ProbeResult& p) {
  if (!p.kernel || same_observation(p.umacvlan, *p.kernel)) return "";
  return p.known_difference.empty() ? "!" : "≈";
}

}  // namespace

std::string render_mode_text(const ModeResult& mode, bool with_kernel) {
  std::string out;
  out += fmt::format("━━ mode {} ━━\n", mode.mode);
  out += render_topology(mode);
  if (!mode.error.empty()) {
    out += "  could not set up this mode: " + mode.error + "\n\n";
    return out;
  }
  for (const HairpinRun& run : mode.runs) {
    out += fmt::format("\n  hairpin {} on the switch port swp0\n", run.hairpin ? "on" : "off");
    for (const ProbeResult& p : run.probes) {
      out += fmt::format("  {} ({} → {}, dst {})\n", pad(p.title, 26), p.from, p.to, p.dst_mac);
      const auto umv = probe_paths(p, p.umacvlan);
      if (with_kernel && p.kernel) {
        const auto k = probe_paths(p, *p.kernel);
        const std::string mark = diff_mark(p);
        if (mark.empty()) {
          for (const auto& l : umv) out += "      both      " + l + "\n";
        } else {
          for (const auto& l : umv) out += "    " + mark + " umacvlan  " + l + "\n";
          for (const auto& l : k) out += "    " + mark + " kernel    " + l + "\n";
          if (!p.known_difference.empty()) out += "      ≈ " + p.known_difference + "\n";
        }
      } else {
        for (const auto& l : umv) out += "      " + l + "\n";
      }
    }
  }
  // The reachability table: probes down, (hairpin, implementation) across.
  out += "\n  reachability";
  if (with_kernel) out += " (umacvlan / kernel; ! where they differ, ≈ where umacvlan means to)";
  out += "\n  " + pad("probe", 28);
  for (const HairpinRun& run : mode.runs)
    out += pad(fmt::format("hairpin {}", run.hairpin ? "on" : "off"), with_kernel ? 16 : 12);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  out += "\n";
  if (!mode.runs.empty()) {
    for (std::size_t i = 0; i < mode.runs.front().probes.size(); ++i) {
      const ProbeResult& first = mode.runs.front().probes[i];
      out += "  " + pad(first.title, 28);
      for (const HairpinRun& run : mode.runs) {
        if (i >= run.probes.size()) continue;
        const ProbeResult& p = run.probes[i];
        std::string cell = yes_no(p.umacvlan);
        if (with_kernel && p.kernel) {
          const std::string mark = diff_mark(p);
          cell = fmt::format("{} / {}{}{}", yes_no(p.umacvlan), yes_no(*p.kernel),
                             mark.empty() ? "" : " ", mark);
        }
        out += pad(cell, with_kernel ? 16 : 12);
      }
      while (!out.empty() && out.back() == ' ') out.pop_back();
      out += "\n";
    }
  }
  out += "\n";
  return out;
}

std::string render_header(const LabReport& report) {
  return fmt::format(
      "umacvlan lab {}: lower0 (a veth) behind a Linux bridge (the switch) with an outside "
      "host;\n"
      "each device in a namespace of its own. Paths are what packet sockets in every namespace "
      "saw:\n"
      "\"port\" = delivered inside the macvlan port, \"(hairpin)\" = the switch sent the frame "
      "back\n"
      "out the port it came in by.\n\n",
      report.id);
}

std::string render_drawback(const DrawbackResult& d) {
  std::string out = fmt::format("\n  ({}) {}\n", d.id, d.title);
  for (const auto& l : d.lines) out += "      " + l + "\n";
  return out;
}

std::string render_summary(const LabReport& report) {
  std::string out;
  int differ = 0, known = 0;
  for (const ModeResult& m : report.modes)
    for (const HairpinRun& r : m.runs)
      for (const ProbeResult& p : r.probes) {
        const std::string mark = diff_mark(p);
        differ += mark == "!";
        known += mark == "≈";
      }
  if (report.with_kernel) {
    out += differ == 0 ? "kernel and umacvlan: the same on every probe"
                       : fmt::format("kernel and umacvlan differ on {} probe(s), marked !", differ);
    if (known > 0) out += fmt::format(" ({} known, marked ≈)", known);
    out += "\n";
  }
  out += fmt::format("lab {} done in {:.1f} s\n", report.id, report.seconds);
  return out;
}

std::string render_text(const LabReport& report) {
  std::string out = render_header(report);
  for (const ModeResult& m : report.modes) out += render_mode_text(m, report.with_kernel);
  if (!report.drawbacks.empty()) {
    out += "━━ drawbacks, shown live ━━\n";
    for (const DrawbackResult& d : report.drawbacks) out += render_drawback(d);
    out += "\n";
  }
  return out + render_summary(report);
}

// ==================================================================== JSON

namespace {

nlohmann::ordered_json observation_json(const ProbeResult& p, const Observation& o) {
  nlohmann::ordered_json j;
  j["received_by"] = received_by(o);
  if (o.ran && o.reachable) {
    j["reachable"] = *o.reachable;
  } else {
    j["reachable"] = nullptr;
  }
  nlohmann::ordered_json copies = nlohmann::ordered_json::array();
  for (const Reception& r : o.receptions)
    copies.push_back({{"who", r.who}, {"via_switch", r.via_switch}, {"copies", r.copies}});
  j["copies"] = copies;
  j["wire"] = o.wire;               // the switch got it from lower0
  j["back_to_lower0"] = o.hairpin;  // the switch sent it toward lower0
  j["path"] = probe_paths(p, o);
  if (!o.note.empty()) j["note"] = o.note;
  return j;
}

}  // namespace

nlohmann::ordered_json report_json(const LabReport& report) {
  nlohmann::ordered_json root;
  root["lab"] = report.id;
  root["with_kernel"] = report.with_kernel;
  nlohmann::ordered_json modes = nlohmann::ordered_json::array();
  for (const ModeResult& m : report.modes) {
    nlohmann::ordered_json jm;
    jm["mode"] = m.mode;
    nlohmann::ordered_json devs = nlohmann::ordered_json::array();
    for (const LabDevice& d : m.devices) {
      nlohmann::ordered_json jd{{"name", d.name}, {"mode", d.mode}, {"mac", d.mac}, {"ip", d.ip}};
      if (!d.source_macs.empty()) jd["source_macs"] = d.source_macs;
      devs.push_back(jd);
    }
    jm["devices"] = devs;
    if (!m.error.empty()) jm["error"] = m.error;
    nlohmann::ordered_json runs = nlohmann::ordered_json::array();
    for (const HairpinRun& r : m.runs) {
      nlohmann::ordered_json jr;
      jr["hairpin"] = r.hairpin;
      nlohmann::ordered_json probes = nlohmann::ordered_json::array();
      for (const ProbeResult& p : r.probes) {
        nlohmann::ordered_json jp;
        jp["probe"] = p.probe;
        jp["title"] = p.title;
        jp["from"] = p.from;
        jp["to"] = p.to;
        jp["dst_mac"] = p.dst_mac;
        const auto mine = observation_json(p, p.umacvlan);
        for (const auto& [k, v] : mine.items()) jp[k] = v;
        if (p.kernel) jp["kernel"] = observation_json(p, *p.kernel);
        if (!p.known_difference.empty()) jp["known_difference"] = p.known_difference;
        probes.push_back(jp);
      }
      jr["probes"] = probes;
      runs.push_back(jr);
    }
    jm["hairpin"] = runs;
    modes.push_back(jm);
  }
  root["modes"] = modes;
  nlohmann::ordered_json draw = nlohmann::ordered_json::array();
  for (const DrawbackResult& d : report.drawbacks)
    draw.push_back({{"id", d.id}, {"title", d.title}, {"lines", d.lines}});
  root["drawbacks"] = draw;
  root["seconds"] = report.seconds;
  return root;
}

// ===================================================================== SVG

namespace {

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

}  // namespace

std::string render_svg(const LabReport& report) {
  std::string body;
  int y = 40;
  const int width = 1100;
  auto text = [&](int x, int ty, std::string_view s, std::string_view cls) {
    body +=
        fmt::format("<text x=\"{}\" y=\"{}\" class=\"{}\">{}</text>\n", x, ty, cls, xml_escape(s));
  };
  auto rect = [&](int x, int ry, int w, int h, std::string_view label) {
    body +=
        fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" class=\"box\"/>\n",
                    x, ry, w, h);
    text(x + 8, ry + h / 2 + 5, label, "mono");
  };
  auto line = [&](int x1, int y1, int x2, int y2) {
    body += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"wire\"/>\n", x1, y1,
                        x2, y2);
  };
  text(20, y, fmt::format("umacvlan lab {}", report.id), "title");
  y += 30;
  for (const ModeResult& m : report.modes) {
    text(20, y, "mode " + m.mode, "title");
    y += 20;
    // topology
    const int cx = 260;
    rect(cx - 120, y, 240, 30, "outside  xeth 10.77.0.1");
    line(cx, y + 30, cx, y + 50);
    rect(cx - 120, y + 50, 240, 30, "switch  br0 (swx, swp0)");
    line(cx, y + 80, cx, y + 100);
    rect(cx - 120, y + 100, 240, 30, "host  lower0 10.77.0.254");
    const int n = static_cast<int>(m.devices.size());
    for (int i = 0; i < n; ++i) {
      const int dx = cx - (n * 200) / 2 + i * 200 + 10;
      line(cx, y + 130, dx + 90, y + 160);
      rect(dx, y + 160, 180, 30,
           m.devices[i].name + " " + m.devices[i].mode + " " + m.devices[i].ip);
    }
    y += 215;
    if (!m.error.empty()) {
      text(40, y, "could not set up: " + m.error, "bad");
      y += 24;
      continue;
    }
    for (const HairpinRun& r : m.runs) {
      text(40, y, fmt::format("hairpin {}", r.hairpin ? "on" : "off"), "head");
      y += 20;
      for (const ProbeResult& p : r.probes) {
        const bool differ = p.kernel && !same_observation(p.umacvlan, *p.kernel);
        text(60, y,
             fmt::format("{}  reachable: {}{}", p.title, yes_no(p.umacvlan),
                         p.kernel ? " / kernel " + yes_no(*p.kernel) : ""),
             differ ? "bad" : "head2");
        y += 17;
        for (const auto& l : probe_paths(p, p.umacvlan)) {
          text(80, y, (p.kernel && differ ? "umacvlan  " : "") + l,
               l.find("✗") != std::string::npos ? "drop" : "mono");
          y += 16;
        }
        if (differ) {
          for (const auto& l : probe_paths(p, *p.kernel)) {
            text(80, y, "kernel    " + l, "bad");
            y += 16;
          }
        }
      }
      y += 8;
    }
    y += 20;
  }
  if (!report.drawbacks.empty()) {
    text(20, y, "drawbacks", "title");
    y += 22;
    for (const DrawbackResult& d : report.drawbacks) {
      text(40, y, "(" + d.id + ") " + d.title, "head");
      y += 18;
      for (const auto& l : d.lines) {
        text(60, y, l, "mono");
        y += 16;
      }
      y += 6;
    }
  }
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\">\n"
      "<style>\n"
      "text {{ font-family: monospace; font-size: 13px; white-space: pre; }}\n"
      ".title {{ font-size: 18px; font-weight: bold; }}\n"
      ".head {{ font-weight: bold; }}\n"
      ".head2 {{ fill: #333; }}\n"
      ".drop {{ fill: #b00; }}\n"
      ".bad {{ fill: #c00; font-weight: bold; }}\n"
      ".box {{ fill: #eef4ff; stroke: #336; }}\n"
      ".wire {{ stroke: #336; stroke-width: 2; }}\n"
      "</style>\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "{2}</svg>\n",
      width, y + 20, body);
}

// ======================================================== running the lab

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) {
  g_stop = 1;
}

// Thrown when the lab cannot go on (a step failed, or SIGINT/SIGTERM).
struct LabAbort : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void check_stop() {
  if (g_stop) throw LabAbort("interrupted");
}

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// ------------------------------------------------------------ processes

struct Proc {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
  std::string out_text;
  std::string err_text;
  int status = -1;  // exit code; 128+signal; -1 not run
};

std::set<pid_t> g_children;

// Starts argv (no shell) with stdout and stderr on pipes and stdin from
// `input` (empty: /dev/null).
Proc spawn(const std::vector<std::string>& argv, const std::string& input = {}) {
  Proc p;
  int out[2], err[2], in[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) < 0) return p;
  if (::pipe2(err, O_CLOEXEC) < 0) {
    ::close(out[0]);
    ::close(out[1]);
    return p;
  }
  if (!input.empty() && ::pipe2(in, O_CLOEXEC) < 0) in[0] = in[1] = -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in[0] >= 0) {
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  } else {
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (in[0] >= 0) ::close(in[0]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    if (in[1] >= 0) ::close(in[1]);
    p.err_text = fmt::format("cannot run {}: {}", argv[0], std::strerror(rc));
    p.status = 127;
    return p;
  }
  if (in[1] >= 0) {
    // Small inputs (a batch of commands) fit in the pipe's buffer.
    std::size_t off = 0;
    while (off < input.size()) {
      const ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(in[1]);
  }
  p.pid = pid;
  p.out = out[0];
  p.err = err[0];
  g_children.insert(pid);
  return p;
}

// Reads the output and waits for the exit, killing the process at the
// deadline.
void finish(Proc& p, Clock::time_point deadline) {
  if (p.pid < 0) return;
  std::array<char, 4096> buf;
  while (p.out >= 0 || p.err >= 0) {
    pollfd fds[2];
    int n = 0;
    if (p.out >= 0) fds[n++] = {p.out, POLLIN, 0};
    if (p.err >= 0) fds[n++] = {p.err, POLLIN, 0};
    const int left = ms_left(deadline);
    const int r = ::poll(fds, n, left);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = ::read(fds[i].fd, buf.data(), buf.size());
      std::string& sink = fds[i].fd == p.out ? p.out_text : p.err_text;
      if (got > 0) {
        sink.append(buf.data(), static_cast<std::size_t>(got));
      } else {
        ::close(fds[i].fd);
        (fds[i].fd == p.out ? p.out : p.err) = -1;
      }
    }
  }
  if (p.out >= 0 || p.err >= 0) ::kill(p.pid, SIGKILL);
  if (p.out >= 0) ::close(p.out);
  if (p.err >= 0) ::close(p.err);
  p.out = p.err = -1;
  int status = 0;
  while (::waitpid(p.pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_children.erase(p.pid);
  p.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  p.pid = -1;
}

Proc run(const std::vector<std::string>& argv, const std::string& input = {},
         int timeout_ms = 15000) {
  Proc p = spawn(argv, input);
  finish(p, Clock::now() + std::chrono::milliseconds(timeout_ms));
  return p;
}

std::string first_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

// Runs argv and throws LabAbort with its stderr when it fails.
std::string must(const std::vector<std::string>& argv, const std::string& input = {}) {
  check_stop();
  Proc p = run(argv, input);
  if (p.status != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw LabAbort(fmt::format("`{}` failed: {}", cmd, first_line(p.err_text + p.out_text)));
  }
  return p.out_text;
}

bool have_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// ------------------------------------------------------------ namespaces

// Enters a namespace for the calling thread for the lifetime of the object.
class InNetns {
 public:
  explicit InNetns(const std::string& ns) {
    saved_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (saved_ < 0 || fd < 0 || ::setns(fd, CLONE_NEWNET) < 0) {
      const int e = errno;
      if (fd >= 0) ::close(fd);
      if (saved_ >= 0) ::close(saved_);
      throw LabAbort(fmt::format("cannot enter namespace {}: {}", ns, std::strerror(e)));
    }
    ::close(fd);
  }
  ~InNetns() {
    ::setns(saved_, CLONE_NEWNET);
    ::close(saved_);
  }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;

 private:
  int saved_ = -1;
};

void write_sysctl(const std::string& ns, const std::string& path, const std::string& value) {
  InNetns in(ns);
  std::ofstream f(path);
  f << value;
}

// Processes whose network namespace is the named one (by inode).
std::vector<pid_t> pids_in_netns(const std::string& ns) {
  std::vector<pid_t> out;
  struct stat target {};
  if (::stat(("/run/netns/" + ns).c_str(), &target) < 0) return out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const pid_t pid = std::stoi(name);
    if (pid == ::getpid()) continue;
    struct stat st {};
    if (::stat(("/proc/" + name + "/ns/net").c_str(), &st) < 0) continue;
    if (st.st_ino == target.st_ino && st.st_dev == target.st_dev) out.push_back(pid);
  }
  return out;
}

void stop_pids(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) ::kill(p, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(3);
  for (pid_t p : pids) {
    while (::kill(p, 0) == 0 && Clock::now() < deadline) {
      // A zombie child of ours would stay "alive": reap it.
      ::waitpid(p, nullptr, WNOHANG);
      struct timespec ts {
        0, 20'000'000
      };
      ::nanosleep(&ts, nullptr);
    }
    if (::kill(p, 0) == 0) ::kill(p, SIGKILL);
  }
}

// Removes every namespace of lab `id`, its daemon first, and its run dir.
void teardown_lab(const std::string& id) {
  const std::string prefix = "umvlab-" + id + "-";
  stop_pids(pids_in_netns(prefix + "host"));
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
    const std::string name = e.path().filename();
    if (name.rfind(prefix, 0) == 0) names.push_back(name);
  }
  // Device namespaces first, the host's (the lower) last.
  std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    return (a == prefix + "host") < (b == prefix + "host") ||
           ((a == prefix + "host") == (b == prefix + "host") && a < b);
  });
  for (const auto& n : names) {
    stop_pids(pids_in_netns(n));
    run({"ip", "netns", "del", n});
  }
  std::filesystem::remove_all(std::string(kLabRunDir) + "/" + id, ec);
}

// ------------------------------------------------------------ the frames

constexpr std::uint16_t kEtherType = 0x88B5;  // IEEE local experimental
constexpr std::size_t kMarkOffset = 14 + 4;   // after "UMVL"
constexpr std::size_t kFrameSize = 60;

std::array<std::uint8_t, 6> parse_mac(const std::string& s) {
  std::array<std::uint8_t, 6> m{};
  unsigned v[6] = {};
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) == 6)
    for (int i = 0; i < 6; ++i) m[i] = static_cast<std::uint8_t>(v[i]);
  return m;
}

std::vector<std::uint8_t> make_frame(const std::string& dst, const std::string& src,
                                     std::uint32_t nonce, std::uint8_t probe) {
  std::vector<std::uint8_t> f(kFrameSize, 0);
  const auto d = parse_mac(dst), s = parse_mac(src);
  std::copy(d.begin(), d.end(), f.begin());
  std::copy(s.begin(), s.end(), f.begin() + 6);
  f[12] = kEtherType >> 8;
  f[13] = kEtherType & 0xff;
  std::memcpy(&f[14], "UMVL", 4);
  f[kMarkOffset] = 0;
  std::memcpy(&f[kMarkOffset + 1], &nonce, 4);
  f[kMarkOffset + 5] = probe;
  return f;
}

// A packet socket on interface `ifname` of namespace `ns`; proto 0 sends
// only; ETH_P_ALL sees both directions; kEtherType what the stack above the
// interface's rx handler gets.
int packet_socket(const std::string& ns, const std::string& ifname, std::uint16_t proto) {
  InNetns in(ns);
  const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(proto));
  if (fd < 0) throw LabAbort(fmt::format("packet socket: {}", std::strerror(errno)));
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(proto);
  sll.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
  if (sll.sll_ifindex == 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) {
    ::close(fd);
    throw LabAbort(fmt::format("cannot bind a packet socket to {} in {}", ifname, ns));
  }
  return fd;
}

struct Listener {
  int fd = -1;
  std::string role;  // device name, "outside", "stack", "swp0"
};

struct Seen {
  std::string role;
  int probe = 0;
  bool marked = false;
  bool outgoing = false;
};

// Reads what the listeners have; keeps frames of this run (nonce) only.
int drain(const std::vector<Listener>& ls, std::uint32_t nonce, std::vector<Seen>* seen) {
  int n = 0;
  for (const Listener& l : ls) {
    std::array<std::uint8_t, 2048> buf;
    for (;;) {
      sockaddr_ll from{};
      socklen_t len = sizeof from;
      const ssize_t got =
          ::recvfrom(l.fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (got < 0) break;
      if (got < static_cast<ssize_t>(kMarkOffset + 6)) continue;
      if (buf[12] != (kEtherType >> 8) || buf[13] != (kEtherType & 0xff)) continue;
      if (std::memcmp(&buf[14], "UMVL", 4) != 0) continue;
      std::uint32_t got_nonce = 0;
      std::memcpy(&got_nonce, &buf[kMarkOffset + 1], 4);
      if (got_nonce != nonce) continue;
      Seen s{l.role, buf[kMarkOffset + 5], buf[kMarkOffset] != 0,
             from.sll_pkttype == PACKET_OUTGOING};
      if (l.role == "stack" && from.sll_pkttype == PACKET_OTHERHOST) continue;
      if (l.role != "swp0" && s.outgoing) continue;
      seen->push_back(s);
      ++n;
    }
  }
  return n;
}

// ------------------------------------------------------------------ lab

constexpr const char* kLowerMac = "02:77:00:00:00:fe";
constexpr const char* kOutsideMac = "02:77:00:00:00:01";
constexpr const char* kOutsideIp = "10.77.0.1";
constexpr const char* kHostIp = "10.77.0.254";
constexpr const char* kBroadcast = "ff:ff:ff:ff:ff:ff";

enum class Impl { kUmacvlan, kKernel };

std::string dev_mac(int i) {
  return fmt::format("02:77:00:00:01:{:02x}", 0x0a + i);
}
std::string dev_ip(int i) {
  return fmt::format("10.77.0.{}", 11 + i);
}

struct ProbeSpec {
  std::string probe, title, from, to, dst_mac, src_ns, src_if, src_mac;
  std::string ping_ns, ping_ip;  // empty: reachable = `to` received it
};

class Lab {
 public:
  Lab(std::string id, std::string umacvlan, bool keep)
      : id_(std::move(id)), umv_(std::move(umacvlan)), keep_(keep) {
    prefix_ = "umvlab-" + id_ + "-";
    host_ = prefix_ + "host";
    sw_ = prefix_ + "switch";
    outside_ = prefix_ + "outside";
    run_dir_ = std::string(kLabRunDir) + "/" + id_;
  }
  ~Lab() {
    // Children of a step cut short (a ping, an ip) go first, by pid.
    for (const pid_t pid : g_children) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    g_children.clear();
    if (!keep_ || failed_) teardown_lab(id_);
  }
  void set_failed() { failed_ = true; }

  const std::string& host() const { return host_; }
  std::string ns_of(const std::string& dev) const { return prefix_ + dev; }

  void build(const std::vector<std::string>& extra_ns);
  void set_hairpin(bool on) {
    must({"bridge", "-n", sw_, "link", "set", "dev", "swp0", "hairpin", on ? "on" : "off"});
  }
  void add_devices(Impl impl, const std::vector<LabDevice>& devs);
  void del_devices(Impl impl, const std::vector<LabDevice>& devs);
  std::string read_mac(const std::string& ns, const std::string& dev);
  std::vector<Observation> run_probes(const std::vector<ProbeSpec>& specs,
                                      const std::vector<LabDevice>& devs);
  bool ping(const std::string& ns, const std::string& ip);
  std::vector<std::string> cmd(Impl impl, const std::string& ns) const {
    if (impl == Impl::kKernel) return {"ip", "-n", ns};
    return {umv_, "-n", ns};
  }
  const std::string& umv() const { return umv_; }
  const std::string& outside() const { return outside_; }
  const std::string& prefix() const { return prefix_; }
  const std::string& run_dir() const { return run_dir_; }
  void flush_neighbours(const std::vector<std::string>& nss);
  void wait_up(Impl impl, const std::string& ns, const std::string& name);
  void send_frame(const std::string& ns, const std::string& ifname,
                  const std::vector<std::uint8_t>& frame);

 private:
  std::string id_, umv_, prefix_, host_, sw_, outside_, run_dir_;
  bool keep_ = false;
  bool failed_ = false;
};

std::string batch(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

void Lab::build(const std::vector<std::string>& extra_ns) {
  std::filesystem::create_directories(run_dir_);
  std::vector<std::string> all{host_, sw_, outside_};
  for (const auto& n : extra_ns) all.push_back(prefix_ + n);
  std::vector<std::string> adds;
  for (const auto& n : all) adds.push_back("netns add " + n);
  must({"ip", "-batch", "-"}, batch(adds));
  for (const auto& n : all) {
    // No IPv6: no router or neighbour solicitations in the counters.
    write_sysctl(n, "/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
    write_sysctl(n, "/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    must({"ip", "-n", n, "link", "set", "lo", "up"});
  }
  must({"ip", "-n", sw_, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay",
        "0", "mcast_snooping", "0"});
  must({"ip", "-n", host_, "link", "add", "lower0", "address", kLowerMac, "type", "veth", "peer",
        "name", "swp0", "netns", sw_});
  must({"ip", "-n", outside_, "link", "add", "xeth", "address", kOutsideMac, "type", "veth", "peer",
        "name", "swx", "netns", sw_});
  must({"ip", "-n", sw_, "-batch", "-"},
       batch({"link set swp0 master br0", "link set swx master br0", "link set br0 up",
              "link set swp0 up", "link set swx up"}));
  // The switch marks every frame it sends toward lower0, so a receiver can
  // tell a copy that came back through the switch from one the port gave it.
  must({"ip", "netns", "exec", sw_, "nft", "-f", "-"},
       "table bridge umvlab {\n"
       "  chain post { type filter hook postrouting priority 0; policy accept;\n"
       "    oifname \"swp0\" ether type 0x88b5 @nh,32,8 set 0x01\n"
       "  }\n"
       "}\n");
  // Static entries: what the switch knows does not depend on which probe
  // ran first (an unknown unicast would be flooded, hairpin port included).
  std::vector<std::string> fdb{fmt::format("fdb add {} dev swx master static", kOutsideMac),
                               fmt::format("fdb add {} dev swp0 master static", kLowerMac)};
  for (int i = 0; i < 2; ++i)
    fdb.push_back(fmt::format("fdb add {} dev swp0 master static", dev_mac(i)));
  must({"bridge", "-n", sw_, "-batch", "-"}, batch(fdb));
  must({"ip", "-n", outside_, "-batch", "-"},
       batch({fmt::format("addr add {}/24 dev xeth", kOutsideIp), "link set xeth up"}));
  must({"ip", "-n", host_, "-batch", "-"},
       batch({fmt::format("addr add {}/24 dev lower0", kHostIp), "link set lower0 up"}));
}

void Lab::send_frame(const std::string& ns, const std::string& ifname,
                     const std::vector<std::uint8_t>& frame) {
  const int fd = packet_socket(ns, ifname, 0);
  ::send(fd, frame.data(), frame.size(), 0);
  ::close(fd);
}

std::string Lab::read_mac(const std::string& ns, const std::string& dev) {
  const auto j = nlohmann::json::parse(must({"ip", "-n", ns, "-j", "link", "show", "dev", dev}),
                                       nullptr, false);
  if (!j.is_array() || j.empty() || !j[0].contains("address")) return {};
  return j[0]["address"].get<std::string>();
}

void Lab::add_devices(Impl impl, const std::vector<LabDevice>& devs) {
  std::vector<std::string> moves;
  for (const LabDevice& d : devs) {
    auto c = cmd(impl, host_);
    for (std::string w : {"link", "add", "link", "lower0", "name"}) c.push_back(w);
    c.push_back(d.name);
    if (d.mode != "passthru" && !d.mac.empty()) {
      c.push_back("address");
      c.push_back(d.mac);
    }
    for (std::string w : {"type", "macvlan", "mode"}) c.push_back(w);
    c.push_back(d.mode);
    must(c);
    if (!d.source_macs.empty()) {
      auto s = cmd(impl, host_);
      for (std::string w : {"link", "set", "dev"}) s.push_back(w);
      s.push_back(d.name);
      for (std::string w : {"type", "macvlan", "macaddr", "add"}) s.push_back(w);
      s.push_back(d.source_macs.front());
      must(s);
    }
    moves.push_back(fmt::format("link set {} netns {}", d.name, ns_of(d.name)));
  }
  must({"ip", "-n", host_, "-batch", "-"}, batch(moves));
  for (const LabDevice& d : devs) {
    must({"ip", "-n", ns_of(d.name), "-batch", "-"},
         batch({fmt::format("addr add {}/24 dev {}", d.ip, d.name),
                fmt::format("link set {} up", d.name)}));
  }
  for (const LabDevice& d : devs) wait_up(impl, ns_of(d.name), d.name);
}

// Bounded wait until each device is up and running as its implementation
// sees it (for umacvlan: the daemon has followed the move and the "up").
void Lab::wait_up(Impl impl, const std::string& ns, const std::string& name) {
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    // `X -n NS -j link show dev NAME`: the options before the object.
    auto c = cmd(impl, ns);
    for (std::string w : {"-j", "link", "show", "dev"}) c.push_back(w);
    c.push_back(name);
    const Proc p = run(c);
    const auto j = nlohmann::json::parse(p.out_text, nullptr, false);
    bool up = false;
    if (j.is_array() && !j.empty() && j[0].contains("flags")) {
      const auto& flags = j[0]["flags"];
      up = std::find(flags.begin(), flags.end(), "LOWER_UP") != flags.end() &&
           std::find(flags.begin(), flags.end(), "UP") != flags.end();
    }
    if (up) return;
    if (Clock::now() >= deadline) throw LabAbort(fmt::format("{} did not come up in 5 s", name));
    check_stop();
    struct timespec ts {
      0, 30'000'000
    };
    ::nanosleep(&ts, nullptr);
  }
}

void Lab::del_devices(Impl impl, const std::vector<LabDevice>& devs) {
  for (const LabDevice& d : devs) {
    auto c = cmd(impl, ns_of(d.name));
    for (std::string w : {"link", "del", "dev"}) c.push_back(w);
    c.push_back(d.name);
    run(c);
  }
}

void Lab::flush_neighbours(const std::vector<std::string>& nss) {
  std::vector<Proc> ps;
  for (const auto& n : nss) ps.push_back(spawn({"ip", "-n", n, "neigh", "flush", "all"}));
  for (auto& p : ps) finish(p, Clock::now() + std::chrono::seconds(5));
}

bool Lab::ping(const std::string& ns, const std::string& ip) {
  Proc p =
      run({"ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-w", "1", "-i", "0.2", ip});
  return p.status == 0;
}

std::vector<Observation> Lab::run_probes(const std::vector<ProbeSpec>& specs,
                                         const std::vector<LabDevice>& devs) {
  std::vector<Listener> ls;
  auto close_all = [&] {
    for (auto& l : ls) ::close(l.fd);
  };
  try {
    for (const LabDevice& d : devs)
      ls.push_back({packet_socket(ns_of(d.name), d.name, kEtherType), d.name});
    ls.push_back({packet_socket(outside_, "xeth", kEtherType), "outside"});
    ls.push_back({packet_socket(host_, "lower0", kEtherType), "stack"});
    ls.push_back({packet_socket(sw_, "swp0", ETH_P_ALL), "swp0"});
  } catch (...) {
    close_all();
    throw;
  }
  std::random_device rd;
  const std::uint32_t nonce = rd();
  // Reachability: every ping at once, each bounded by its -w.
  std::vector<Proc> pings(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].ping_ns.empty()) continue;
    pings[i] = spawn({"ip", "netns", "exec", specs[i].ping_ns, "ping", "-n", "-q", "-c", "1", "-w",
                      "1", "-i", "0.2", specs[i].ping_ip});
  }
  // The probe frames: each tagged with the run's nonce and its index.
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    send_frame(s.src_ns, s.src_if,
               make_frame(s.dst_mac, s.src_mac, nonce, static_cast<std::uint8_t>(i)));
  }
  const auto sent = Clock::now();
  std::vector<Seen> seen;
  // Collect until the pings are done and the listeners have been quiet for
  // a while (bounded: a userspace forwarder is quick, but not instant).
  auto last = Clock::now();
  const auto hard = sent + std::chrono::seconds(3);
  for (;;) {
    if (drain(ls, nonce, &seen) > 0) last = Clock::now();
    bool pings_done = true;
    for (auto& p : pings) {
      if (p.pid < 0) continue;
      int status = 0;
      const pid_t r = ::waitpid(p.pid, &status, WNOHANG);
      if (r == p.pid) {
        g_children.erase(p.pid);
        p.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        p.pid = -1;
        ::close(p.out);
        ::close(p.err);
        p.out = p.err = -1;
      } else {
        pings_done = false;
      }
    }
    const auto now = Clock::now();
    if (pings_done && now - sent > std::chrono::milliseconds(400) &&
        now - last > std::chrono::milliseconds(200))
      break;
    if (now > hard) break;
    if (g_stop) break;
    std::vector<pollfd> fds;
    for (const auto& l : ls) fds.push_back({l.fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 20);
  }
  for (auto& p : pings) finish(p, Clock::now() + std::chrono::seconds(2));
  close_all();
  check_stop();

  std::vector<Observation> out(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    Observation& o = out[i];
    o.ran = true;
    for (const Seen& s : seen) {
      if (s.probe != static_cast<int>(i)) continue;
      if (s.role == "swp0") {
        (s.outgoing ? o.hairpin : o.wire) = true;
        continue;
      }
      // The sender's own socket sees nothing it sent (packet sockets bound
      // to a protocol get incoming frames only); a copy here came back.
      auto it = std::find_if(o.receptions.begin(), o.receptions.end(), [&](const Reception& r) {
        return r.who == s.role && r.via_switch == s.marked;
      });
      if (it != o.receptions.end()) {
        ++it->copies;
      } else {
        o.receptions.push_back({s.role, s.marked, 1});
      }
    }
    std::stable_sort(o.receptions.begin(), o.receptions.end(),
                     [](const Reception& a, const Reception& b) { return a.who < b.who; });
    if (!specs[i].ping_ns.empty()) {
      o.reachable = pings[i].status == 0;
    } else {
      o.reachable = std::any_of(o.receptions.begin(), o.receptions.end(),
                                [&](const Reception& r) { return r.who == specs[i].to; });
    }
  }
  return out;
}

// ---------------------------------------------------------------- modes

std::vector<LabDevice> devices_for(const std::string& mode) {
  std::vector<LabDevice> d;
  if (mode == "passthru") {
    d.push_back({"mva", "passthru", "", dev_ip(0), {}});
  } else if (mode == "source") {
    d.push_back({"mva", "source", dev_mac(0), dev_ip(0), {kOutsideMac}});
    d.push_back({"mvb", "bridge", dev_mac(1), dev_ip(1), {}});
  } else {
    d.push_back({"mva", mode, dev_mac(0), dev_ip(0), {}});
    d.push_back({"mvb", mode, dev_mac(1), dev_ip(1), {}});
  }
  return d;
}

std::vector<ProbeSpec> probes_for(const Lab& lab, const std::vector<LabDevice>& devs) {
  std::vector<ProbeSpec> s;
  const LabDevice& a = devs.front();
  const LabDevice* b = devs.size() > 1 ? &devs[1] : nullptr;
  const std::string na = lab.ns_of(a.name);
  if (b) {
    s.push_back(
        {"dev>sibling", "device → sibling", a.name, b->name, b->mac, na, a.name, a.mac, na, b->ip});
  }
  s.push_back({"dev>outside", "device → outside", a.name, "outside", kOutsideMac, na, a.name, a.mac,
               na, kOutsideIp});
  const LabDevice& t = b ? *b : a;
  s.push_back({"outside>dev", "outside → device", "outside", t.name, t.mac, lab.outside(), "xeth",
               kOutsideMac, lab.outside(), t.ip});
  s.push_back({"dev>bcast", "broadcast from a device", a.name, b ? b->name : "outside", kBroadcast,
               na, a.name, a.mac, "", ""});
  s.push_back({"outside>bcast", "broadcast from outside", "outside", a.name, kBroadcast,
               lab.outside(), "xeth", kOutsideMac, "", ""});
  s.push_back({"host>dev", "host stack → own device", "lower0", a.name, a.mac, lab.host(), "lower0",
               kLowerMac, lab.host(), a.ip});
  return s;
}

// Runs one mode with one implementation, both hairpin settings; fills
// either the umacvlan or the kernel side of `result`.
void run_mode(Lab& lab, Impl impl, ModeResult* result) {
  auto devs = devices_for(result->mode);
  lab.add_devices(impl, devs);
  try {
    for (auto& d : devs) d.mac = lab.read_mac(lab.ns_of(d.name), d.name);
    if (result->devices.empty()) result->devices = devs;
    std::vector<std::string> nss{lab.host(), lab.outside()};
    for (const auto& d : devs) nss.push_back(lab.ns_of(d.name));
    const auto specs = probes_for(lab, devs);
    for (int h = 0; h < 2; ++h) {
      const bool hairpin = h == 1;
      lab.set_hairpin(hairpin);
      lab.flush_neighbours(nss);
      const auto obs = lab.run_probes(specs, devs);
      if (static_cast<int>(result->runs.size()) <= h) {
        HairpinRun run;
        run.hairpin = hairpin;
        for (const auto& s : specs)
          run.probes.push_back({s.probe, s.title, s.from, s.to, s.dst_mac, {}, std::nullopt, {}});
        result->runs.push_back(run);
      }
      auto& run = result->runs[h];
      for (std::size_t i = 0; i < obs.size() && i < run.probes.size(); ++i) {
        if (impl == Impl::kKernel) {
          run.probes[i].kernel = obs[i];
        } else {
          run.probes[i].umacvlan = obs[i];
        }
      }
    }
  } catch (...) {
    lab.del_devices(impl, devs);
    throw;
  }
  lab.del_devices(impl, devs);
}

// ------------------------------------------------------------ drawbacks

std::string yn(bool b) {
  return b ? "yes" : "no";
}

DrawbackResult drawback_host(Lab& lab) {
  DrawbackResult r{"a", "the host cannot reach its own devices", {}};
  lab.set_hairpin(false);
  std::vector<LabDevice> devs{{"mva", "bridge", dev_mac(0), dev_ip(0), {}}};
  lab.add_devices(Impl::kUmacvlan, devs);
  const std::string h = lab.host();
  lab.flush_neighbours({h, lab.ns_of("mva")});
  const bool before = lab.ping(h, dev_ip(0));
  r.lines.push_back(
      fmt::format("host 10.77.0.254 (lower0) ping mva {}: {}", dev_ip(0), yn(before)));
  r.lines.push_back(
      "why: lower0 sends straight to the wire; the port only sees what comes in from it");
  r.lines.push_back("workaround: a bridge-mode \"shim\" device for the host, with a /32 route:");
  const std::vector<std::vector<std::string>> steps{
      {lab.umv(), "link", "add", "link", "lower0", "name", "shim0", "type", "macvlan", "mode",
       "bridge"},
      {"ip", "addr", "add", "10.77.0.253/32", "dev", "shim0"},
      {"ip", "link", "set", "shim0", "up"},
      {"ip", "route", "add", dev_ip(0) + "/32", "dev", "shim0"}};
  bool ok = true;
  for (const auto& s : steps) {
    std::vector<std::string> c = s;
    std::string shown = s[0] == lab.umv() ? "umacvlan" : s[0];
    for (std::size_t i = 1; i < s.size(); ++i) shown += " " + s[i];
    r.lines.push_back("  # " + shown);
    c.insert(c.begin() + 1, {"-n", h});
    Proc p = run(c);
    if (p.status != 0) {
      r.lines.push_back("    failed: " + first_line(p.err_text));
      ok = false;
      break;
    }
  }
  if (ok) {
    lab.wait_up(Impl::kUmacvlan, h, "shim0");
    const bool after = lab.ping(h, dev_ip(0));
    r.lines.push_back(
        fmt::format("host ping mva {} through shim0 (from 10.77.0.253): {}", dev_ip(0), yn(after)));
  }
  run({lab.umv(), "-n", h, "link", "del", "dev", "shim0"});
  // umacvlan's own answer: the same, made and kept up to date by the port.
  r.lines.push_back("umacvlan's answer, nothing by hand:");
  r.lines.push_back("  # umacvlan link set dev lower0 type macvlan hostaccess on");
  Proc on = run(
      {lab.umv(), "-n", h, "link", "set", "dev", "lower0", "type", "macvlan", "hostaccess", "on"});
  if (on.status != 0) {
    r.lines.push_back("    failed: " + first_line(on.err_text));
  } else {
    lab.wait_up(Impl::kUmacvlan, h, "lower0.host");
    lab.flush_neighbours({h, lab.ns_of("mva")});
    // mva says something (its ARP for the host): the port learns its address.
    const bool to_host = lab.ping(lab.ns_of("mva"), kHostIp);
    const bool from_host = lab.ping(h, dev_ip(0));
    r.lines.push_back(fmt::format("mva ping host {}: {}; host ping mva {}: {}", kHostIp,
                                  yn(to_host), dev_ip(0), yn(from_host)));
    run({lab.umv(), "-n", h, "link", "set", "dev", "lower0", "type", "macvlan", "hostaccess",
         "off"});
  }
  lab.del_devices(Impl::kUmacvlan, devs);
  return r;
}

DrawbackResult drawback_private(Lab& lab) {
  DrawbackResult r{"b",
                   "private mode blocks ARP between siblings, but not a unicast the switch "
                   "reflects",
                   {}};
  auto devs = devices_for("private");
  lab.set_hairpin(true);
  lab.add_devices(Impl::kUmacvlan, devs);
  const std::string na = lab.ns_of("mva"), nb = lab.ns_of("mvb");
  lab.flush_neighbours({na, nb});
  const bool before = lab.ping(na, dev_ip(1));
  r.lines.push_back(
      fmt::format("private mva ping private mvb, hairpin on: {} (the ARP broadcast is "
                  "sent back to mva only)",
                  yn(before)));
  r.lines.push_back("workaround (or a trick): static neighbour entries on both sides:");
  r.lines.push_back(fmt::format("  # ip -n {} neigh replace {} lladdr {} dev mva nud permanent", na,
                                dev_ip(1), dev_mac(1)));
  r.lines.push_back(fmt::format("  # ip -n {} neigh replace {} lladdr {} dev mvb nud permanent", nb,
                                dev_ip(0), dev_mac(0)));
  const Proc p1 = run({"ip", "-n", na, "neigh", "replace", dev_ip(1), "lladdr", dev_mac(1), "dev",
                       "mva", "nud", "permanent"});
  const Proc p2 = run({"ip", "-n", nb, "neigh", "replace", dev_ip(0), "lladdr", dev_mac(0), "dev",
                       "mvb", "nud", "permanent"});
  if (p1.status == 0 && p2.status == 0) {
    r.lines.push_back(fmt::format("mva ping mvb with static entries, hairpin on: {}",
                                  yn(lab.ping(na, dev_ip(1)))));
    // Where that unicast went, as seen, not as told.
    const auto specs = probes_for(lab, devs);
    const auto sib = std::find_if(specs.begin(), specs.end(),
                                  [](const ProbeSpec& s) { return s.probe == "dev>sibling"; });
    if (sib != specs.end()) {
      const auto obs = lab.run_probes({*sib}, devs);
      ProbeResult pr{sib->probe,   sib->title,  sib->from,    sib->to,
                     sib->dst_mac, obs.front(), std::nullopt, {}};
      for (const auto& l : probe_paths(pr, obs.front())) r.lines.push_back("  seen: " + l);
    }
  }
  lab.set_hairpin(false);
  r.lines.push_back(fmt::format("the same with hairpin off: {} (nothing brings the frame back)",
                                yn(lab.ping(na, dev_ip(1)))));
  lab.del_devices(Impl::kUmacvlan, devs);
  return r;
}

DrawbackResult drawback_passthru(Lab& lab, bool with_kernel) {
  DrawbackResult r{"c", "a lower takes one passthru device: a second one is refused", {}};
  for (Impl impl : {Impl::kUmacvlan, Impl::kKernel}) {
    if (impl == Impl::kKernel && !with_kernel) continue;
    const std::string who = impl == Impl::kKernel ? "ip" : "umacvlan";
    auto c = [&](const std::string& name) {
      auto v = lab.cmd(impl, lab.host());
      for (std::string w : {"link", "add", "link", "lower0", "name"}) v.push_back(w);
      v.push_back(name);
      for (std::string w : {"type", "macvlan", "mode", "passthru"}) v.push_back(w);
      return v;
    };
    const Proc first = run(c("pt0"));
    r.lines.push_back(
        fmt::format("# {} link add link lower0 name pt0 type macvlan mode passthru: "
                    "exit {}",
                    who, first.status));
    const Proc second = run(c("pt1"));
    r.lines.push_back(
        fmt::format("# {} link add link lower0 name pt1 type macvlan mode passthru: "
                    "exit {}",
                    who, second.status));
    std::istringstream err(second.err_text);
    for (std::string l; std::getline(err, l);) r.lines.push_back("    " + l);
    for (const std::string name : {"pt1", "pt0"}) {
      auto d = lab.cmd(impl, lab.host());
      for (std::string w : {"link", "del", "dev"}) d.push_back(w);
      d.push_back(name);
      run(d);
    }
  }
  r.lines.push_back("passthru hands the whole lower to one device (it takes the lower's MAC and");
  r.lines.push_back("sets it promiscuous); other devices on that lower are refused as well");
  return r;
}

// The access point of a Wi-Fi lower, emulated on the outside end of the
// veth: like an AP, it takes frames only from its associated station, i.e.
// with lower0's MAC as their source, and counts what it drops.
constexpr const char* kApTable = "umvlab_ap";

std::string ap_ruleset() {
  return fmt::format(
      "table netdev {} {{\n"
      "  counter dropped {{ }}\n"
      "  chain ingress {{ type filter hook ingress device \"xeth\" priority 0; policy accept;\n"
      "    ether saddr != {} counter name \"dropped\" drop\n"
      "  }}\n"
      "}}\n",
      kApTable, kLowerMac);
}

// The AP's drop counter, from `nft -j list counter`; -1 when unreadable.
long long ap_dropped(Lab& lab) {
  const Proc p = run({"ip", "netns", "exec", lab.outside(), "nft", "-j", "list", "counter",
                      "netdev", kApTable, "dropped"});
  const auto j = nlohmann::json::parse(p.out_text, nullptr, false);
  if (p.status != 0 || !j.is_object() || !j.contains("nftables")) return -1;
  for (const auto& e : j["nftables"])
    if (e.contains("counter")) return e["counter"].value("packets", -1LL);
  return -1;
}

std::string ap_count(long long n) {
  if (n < 0) return "unreadable";
  return fmt::format("{} frame{}", n, n == 1 ? "" : "s");
}

// The "macnat ..." lines of `umacvlan -d link show dev lower0`.
std::vector<std::string> macnat_lines(Lab& lab) {
  const Proc p = run({lab.umv(), "-n", lab.host(), "-d", "link", "show", "dev", "lower0"});
  std::vector<std::string> out;
  std::istringstream in(p.out_text);
  for (std::string l; std::getline(in, l);) {
    const auto start = l.find_first_not_of(' ');
    if (start != std::string::npos && l.compare(start, 7, "macnat ") == 0)
      out.push_back(l.substr(start));
  }
  return out;
}

DrawbackResult drawback_wifi(Lab& lab) {
  DrawbackResult r{
      "d",
      "Wi-Fi lowers drop frames from unknown source MACs (an access point emulated with nftables)",
      {}};
  const std::string h = lab.host(), na = lab.ns_of("mva");
  const std::vector<std::string> nss{h, na, lab.outside()};
  std::vector<LabDevice> devs{{"mva", "bridge", dev_mac(0), dev_ip(0), {}}};
  // What this step has started, undone in reverse on the way out, also when
  // a step throws: the lab goes on with the next drawback.
  bool ap = false, added = false, macnat = false;
  auto undo = [&](bool failed) {
    if (macnat)
      run({lab.umv(), "-n", h, "link", "set", "dev", "lower0", "type", "macvlan", "macnat", "off"});
    if (ap)
      run({"ip", "netns", "exec", lab.outside(), "nft", "delete", "table", "netdev", kApTable});
    if (added) {
      lab.del_devices(Impl::kUmacvlan, devs);
      // add_devices may have stopped before moving it out of the host.
      if (failed) run({lab.umv(), "-n", h, "link", "del", "dev", "mva"});
    }
    // The outside knows 10.77.0.11 at lower0's MAC now: not for what comes next.
    lab.flush_neighbours(nss);
  };
  try {
    lab.set_hairpin(false);
    r.lines.push_back(fmt::format(
        "the access point, in {}: frames in on xeth pass only with lower0's MAC {} as source",
        lab.outside(), kLowerMac));
    r.lines.push_back(fmt::format(
        "  # nft: table netdev {}, hook ingress device xeth: ether saddr != {} counter drop",
        kApTable, kLowerMac));
    ap = true;
    must({"ip", "netns", "exec", lab.outside(), "nft", "-f", "-"}, ap_ruleset());
    added = true;
    lab.add_devices(Impl::kUmacvlan, devs);
    lab.flush_neighbours(nss);
    const bool before = lab.ping(na, kOutsideIp);
    // The kernel goes on asking for 10.77.0.1 after ping gives up: stop it,
    // so that the counter read now stays put unless something new is sent.
    lab.flush_neighbours({na});
    const long long dropped = ap_dropped(lab);
    r.lines.push_back(fmt::format("mva {} ({}) ping outside {}: {}; the AP dropped {}", dev_ip(0),
                                  dev_mac(0), kOutsideIp, yn(before), ap_count(dropped)));
    for (const char* l :
         {"An 802.11 station may send only with the MAC it associated with: the access point",
          "drops (or never acknowledges) frames whose source is a macvlan device's own MAC, so",
          "devices on a Wi-Fi lower stay silent. Workarounds: the AP in 4-address (WDS) mode, a",
          "routed setup (ipvlan L3, proxy ARP) in place of macvlan, or a wired lower."})
      r.lines.emplace_back(l);
    // umacvlan's own answer: the port puts lower0's MAC on what leaves and
    // sends what comes back to the device owning the destination IP.
    r.lines.push_back("umacvlan's answer, nothing by hand:");
    r.lines.push_back("  # umacvlan link set dev lower0 type macvlan macnat on");
    macnat = true;
    const Proc on = run(
        {lab.umv(), "-n", h, "link", "set", "dev", "lower0", "type", "macvlan", "macnat", "on"});
    if (on.status != 0) {
      r.lines.push_back("    failed: " + first_line(on.err_text + on.out_text));
    } else {
      lab.flush_neighbours(nss);
      // A lost first ARP costs ping -w 1 its deadline: a few tries.
      bool after = false;
      for (int i = 0; i < 3 && !after; ++i) {
        check_stop();
        after = lab.ping(na, kOutsideIp);
      }
      const long long now = ap_dropped(lab);
      r.lines.push_back(fmt::format("mva ping outside {}: {}; the AP's drop counter: {}{}",
                                    kOutsideIp, yn(after), ap_count(now),
                                    now >= 0 && now == dropped ? " (none new)" : ""));
      r.lines.push_back("what the port learned (umacvlan -d link show dev lower0):");
      const auto learned = macnat_lines(lab);
      if (learned.empty()) r.lines.push_back("  (no macnat entries)");
      for (const auto& l : learned) r.lines.push_back("  " + l);
    }
  } catch (...) {
    undo(true);
    throw;
  }
  undo(false);
  return r;
}

std::uint64_t rx_sum(const nlohmann::json& links, int* count) {
  std::uint64_t sum = 0;
  *count = 0;
  if (!links.is_array()) return 0;
  for (const auto& l : links) {
    if (!l.contains("ifname") || l["ifname"] == "lo") continue;
    ++*count;
    if (l.contains("stats64") && l["stats64"].contains("rx"))
      sum += l["stats64"]["rx"].value("packets", std::uint64_t{0});
  }
  return sum;
}

DrawbackResult drawback_many(Lab& lab, bool with_kernel) {
  constexpr int kMany = 50;
  DrawbackResult r{"e", fmt::format("{} devices and the broadcast queue", kMany), {}};
  const std::string many = lab.ns_of("many");
  for (Impl impl : {Impl::kUmacvlan, Impl::kKernel}) {
    if (impl == Impl::kKernel && !with_kernel) continue;
    const std::string who = impl == Impl::kKernel ? "kernel" : "umacvlan";
    const auto t0 = Clock::now();
    std::vector<std::string> names;
    for (int i = 0; i < kMany; ++i) names.push_back(fmt::format("mv{}", i));
    if (impl == Impl::kKernel) {
      std::vector<std::string> lines;
      for (const auto& n : names)
        lines.push_back("link add link lower0 name " + n + " type macvlan mode bridge");
      must({"ip", "-n", lab.host(), "-batch", "-"}, batch(lines));
    } else {
      // A few creations at a time: each is a round trip to the daemon.
      for (std::size_t i = 0; i < names.size(); i += 8) {
        std::vector<Proc> ps;
        for (std::size_t j = i; j < std::min(names.size(), i + 8); ++j)
          ps.push_back(spawn({lab.umv(), "-n", lab.host(), "link", "add", "link", "lower0", "name",
                              names[j], "type", "macvlan", "mode", "bridge"}));
        for (auto& p : ps) finish(p, Clock::now() + std::chrono::seconds(15));
      }
    }
    std::vector<std::string> moves, ups;
    for (const auto& n : names) {
      moves.push_back("link set " + n + " netns " + many);
      ups.push_back("link set " + n + " up");
    }
    must({"ip", "-n", lab.host(), "-batch", "-"}, batch(moves));
    must({"ip", "-n", many, "-batch", "-"}, batch(ups));
    const double made = std::chrono::duration<double>(Clock::now() - t0).count();
    auto stats = [&]() {
      auto c = lab.cmd(impl, many);
      c.push_back("-j");
      c.push_back("-s");
      c.push_back("link");
      c.push_back("show");
      return nlohmann::json::parse(run(c).out_text, nullptr, false);
    };
    // Ready: every device listed and up as its implementation sees it.
    const auto ready_by = Clock::now() + std::chrono::seconds(5);
    int n = 0;
    std::uint64_t before = 0;
    for (;;) {
      const auto j = stats();
      int up = 0;
      if (j.is_array())
        for (const auto& l : j)
          if (l.contains("flags") &&
              std::find(l["flags"].begin(), l["flags"].end(), "LOWER_UP") != l["flags"].end() &&
              l.value("ifname", "") != "lo")
            ++up;
      before = rx_sum(j, &n);
      if (up >= kMany || Clock::now() > ready_by) break;
      struct timespec ts {
        0, 50'000'000
      };
      ::nanosleep(&ts, nullptr);
    }
    lab.send_frame(lab.outside(), "xeth", make_frame(kBroadcast, kOutsideMac, 0, 0));
    // Wait until every device has its copy or the count stops moving.
    std::uint64_t after = before, last = before;
    auto quiet_since = Clock::now();
    const auto hard = Clock::now() + std::chrono::seconds(3);
    while (Clock::now() < hard) {
      after = rx_sum(stats(), &n);
      if (after != last) {
        last = after;
        quiet_since = Clock::now();
      }
      if (after - before >= static_cast<std::uint64_t>(kMany)) break;
      if (after != before && Clock::now() - quiet_since > std::chrono::milliseconds(300)) break;
      struct timespec ts {
        0, 30'000'000
      };
      ::nanosleep(&ts, nullptr);
    }
    r.lines.push_back(fmt::format(
        "{}: {} bridge devices made and up in {:.1f} s; one broadcast from outside -> {} copies "
        "(rx packets summed over `{} -j -s link show`)",
        who, n, made, after - before, impl == Impl::kKernel ? "ip" : "umacvlan"));
    std::vector<std::string> dels;
    for (const auto& nm : names) dels.push_back("link del " + nm);
    if (impl == Impl::kKernel) {
      run({"ip", "-n", many, "-batch", "-"}, batch(dels));
    } else {
      for (const auto& nm : names) run({lab.umv(), "-n", many, "link", "del", "dev", nm});
    }
  }
  r.lines.push_back("every broadcast or multicast frame is copied once per device: 50 devices, 50");
  r.lines.push_back("copies, the work grows with the device count. Frames from the wire wait in a");
  r.lines.push_back("queue per lower (bcqueuelen, default 1000; the largest asked for by a device");
  r.lines.push_back(
      "wins: `link add ... type macvlan bcqueuelen 5000`); past it, a burst is dropped.");
  r.lines.push_back(
      "bclim N (the kernel's broadcast cutoff) decides which multicast goes through that");
  r.lines.push_back("queue and which is delivered at once (`umacvlan link help macvlan`).");
  return r;
}

std::string new_id() {
  std::random_device rd;
  return fmt::format("{:06x}", (rd() ^ static_cast<unsigned>(::getpid())) & 0xffffff);
}

void write_out(FILE* f, std::string_view s) {
  std::fwrite(s.data(), 1, s.size(), f);
}

int lab_down() {
  const std::string current = std::string(kLabRunDir) + "/current";
  std::ifstream f(current);
  std::string id;
  if (!(f >> id) || id.empty() ||
      !std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(c); })) {
    write_out(stderr, fmt::format("No kept lab: {} names none.\n", current));
    return kLabExitBuild;
  }
  teardown_lab(id);
  std::error_code ec;
  std::filesystem::remove(current, ec);
  write_out(stdout, fmt::format("lab {} removed (namespaces umvlab-{}-*, its daemon, {}/{})\n", id,
                                id, kLabRunDir, id));
  return kLabExitOk;
}

}  // namespace

int run_lab(const std::vector<std::string>& args, bool json, bool pretty) {
  const auto parsed = parse_lab_options(args);
  if (const auto* e = std::get_if<LabUsageError>(&parsed)) {
    write_out(stderr, e->message);
    return kLabExitUsage;
  }
  const LabOptions& o = std::get<LabOptions>(parsed);
  if (o.help) {
    write_out(stdout, lab_usage());
    return kLabExitOk;
  }
  if (::geteuid() != 0) {
    write_out(stderr,
              "umacvlan lab needs root: it builds network namespaces, a bridge and devices "
              "(run it with sudo).\n");
    return kLabExitBuild;
  }
  for (const char* tool : {"ip", "bridge", "ping", "nft"}) {
    if (!have_program(tool)) {
      write_out(stderr, fmt::format("umacvlan lab needs `{}` (not found in PATH).\n", tool));
      return kLabExitBuild;
    }
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  if (o.down) return lab_down();

  // This very program, even if its file is replaced while the lab runs (a
  // spawned child's /proc/self/exe is still our image until it execs).
  const std::string umv = "/proc/self/exe";
  const std::string id = new_id();
  const auto t0 = Clock::now();
  LabReport report;
  report.id = id;
  report.with_kernel = o.with_kernel;
  int rc = kLabExitOk;
  {
    Lab lab(id, umv, o.keep);
    // The lab's daemon is its own: its socket in the run dir, and it lives
    // in the lab's host namespace.
    ::setenv("UMACVLAN_SOCKET", (lab.run_dir() + "/umacvlan.sock").c_str(), 1);
    ::setenv("UMACVLAN_DAEMON_NETNS", ("/run/netns/" + lab.host()).c_str(), 1);
    try {
      lab.build({"mva", "mvb", "many"});
    } catch (const std::exception& e) {
      lab.set_failed();
      write_out(stderr, fmt::format("umacvlan lab: the lab could not be built: {}\n", e.what()));
      return g_stop ? 130 : kLabExitBuild;
    }
    if (!json) write_out(stdout, render_header(report));
    try {
      for (const auto& m : o.modes) {
        ModeResult mr;
        mr.mode = m;
        try {
          if (o.with_kernel) run_mode(lab, Impl::kKernel, &mr);
          run_mode(lab, Impl::kUmacvlan, &mr);
          for (HairpinRun& r : mr.runs)
            for (ProbeResult& p : r.probes) p.known_difference = classify_difference(p, mr.devices);
        } catch (const std::exception& e) {
          if (g_stop) throw LabAbort("interrupted");
          mr.error = e.what();
        }
        if (!json) write_out(stdout, render_mode_text(mr, o.with_kernel));
        std::fflush(stdout);
        report.modes.push_back(std::move(mr));
      }
      if (o.drawbacks) {
        struct Step {
          const char* id;
          const char* title;
          std::function<DrawbackResult()> show;
        };
        const std::vector<Step> steps{
            {"a", "the host cannot reach its own devices", [&] { return drawback_host(lab); }},
            {"b", "private mode and a reflected unicast", [&] { return drawback_private(lab); }},
            {"c", "a second passthru device",
             [&] { return drawback_passthru(lab, o.with_kernel); }},
            {"d", "Wi-Fi lowers (an access point emulated with nftables)",
             [&] { return drawback_wifi(lab); }},
            {"e", "many devices and the broadcast queue",
             [&] { return drawback_many(lab, o.with_kernel); }}};
        if (!json) write_out(stdout, "━━ drawbacks, shown live ━━\n");
        for (const auto& step : steps) {
          DrawbackResult d;
          try {
            d = step.show();
          } catch (const std::exception& e) {
            if (g_stop) throw LabAbort("interrupted");
            d = {step.id, step.title, {std::string("could not show this: ") + e.what()}};
          }
          if (!json) {
            write_out(stdout, render_drawback(d));
            std::fflush(stdout);
          }
          report.drawbacks.push_back(std::move(d));
        }
        if (!json) write_out(stdout, "\n");
      }
    } catch (const std::exception& e) {
      lab.set_failed();
      write_out(stderr, fmt::format("umacvlan lab: {}; removing the lab\n", e.what()));
      return g_stop ? 130 : kLabExitBuild;
    }
    report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (o.keep) {
      // Leave the last mode's devices in place to play with.
      try {
        lab.set_hairpin(false);
        lab.add_devices(Impl::kUmacvlan, devices_for(o.modes.back()));
      } catch (const LabAbort& e) {
        write_out(stderr,
                  fmt::format("umacvlan lab: could not leave devices in the lab: {}\n", e.what()));
      }
      std::ofstream(std::string(kLabRunDir) + "/current") << id << "\n";
    }
    if (json) {
      const auto j = report_json(report);
      write_out(stdout, pretty ? to_pretty_json(j) : j.dump() + "\n");
    } else {
      std::string tail;
      if (o.keep) {
        tail += fmt::format("the lab is kept (id {}). Enter a namespace:\n", id);
        for (const std::string n : {"host", "switch", "outside", "mva", "mvb", "many"})
          tail += fmt::format("  ip netns exec umvlab-{}-{} bash\n", id, n);
        tail += fmt::format(
            "  (umacvlan commands there: UMACVLAN_SOCKET={}/umacvlan.sock)\n"
            "remove it with: umacvlan lab --down\n",
            lab.run_dir());
      }
      write_out(stdout, tail + render_summary(report));
    }
    if (o.svg_file) {
      std::ofstream svg(*o.svg_file);
      svg << render_svg(report);
      if (!svg) {
        write_out(stderr, fmt::format("umacvlan lab: cannot write {}\n", *o.svg_file));
        rc = kLabExitBuild;
      }
    }
  }
  return rc;
}

}  // namespace umacvlan::cli
