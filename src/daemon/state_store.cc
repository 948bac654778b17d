#include "daemon/state_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace umacvlan::daemon {
namespace {

using nlohmann::json;

constexpr int kFormatVersion = 1;

std::string errno_text(int err) {
  return std::strerror(err);
}

// The file is written by hand, in the order and spacing json::dump() would
// give (keys sorted, compact): every change writes the whole state, and
// with a thousand devices a save through a json tree (indented) took 7.2-8.7
// ms (with the fsyncs of that time), a quarter to a third of the daemon's
// CPU time per `link add`; this way 1.9-2.6 ms. Strings go through
// json::dump(), so names are escaped as json would escape them (bytes that
// are not UTF-8 become U+FFFD rather than an exception); load_state() reads
// it with json.
void put_string(std::string& out, const std::string& s) {
  out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

void put_macs(std::string& out, const std::vector<core::MacAddress>& v) {
  out += '[';
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 0) out += ',';
    fmt::format_to(std::back_inserter(out), "\"{}\"", v[i].to_string());
  }
  out += ']';
}

void put_device(std::string& out, const DeviceRecord& d) {
  fmt::format_to(std::back_inserter(out),
                 "{{\"bcqueuelen\":{},\"flags\":{},\"ifindex\":{},\"mac\":\"{}\","
                 "\"mode\":\"{}\",\"mtu\":{},\"name\":",
                 d.bcqueuelen, d.flags, d.ifindex, d.mac.to_string(), core::to_string(d.mode),
                 d.mtu);
  put_string(out, d.name);
  fmt::format_to(std::back_inserter(out), ",\"netns\":{},", static_cast<std::uint64_t>(d.netns));
  if (d.pending) out += "\"pending\":true,";
  out += "\"sources\":";
  put_macs(out, d.sources);
  fmt::format_to(std::back_inserter(out), ",\"spoofchk\":{},\"up\":{}}}", d.spoofchk, d.up);
}

void put_port(std::string& out, const PortRecord& p) {
  fmt::format_to(std::back_inserter(out), "{{\"bclim\":{},\"devices\":[", p.bclim);
  for (std::size_t i = 0; i < p.devices.size(); ++i) {
    if (i != 0) out += ',';
    put_device(out, p.devices[i]);
  }
  fmt::format_to(std::back_inserter(out),
                 "],\"hostaccess\":{},\"lower\":{{\"ifindex\":{},\"name\":", p.hostaccess,
                 p.lower_ifindex);
  put_string(out, p.lower_name);
  fmt::format_to(std::back_inserter(out),
                 ",\"netns\":{},\"perm_mac\":\"{}\"}},\"macnat\":{},\"macnat_ageing\":{}}}",
                 static_cast<std::uint64_t>(p.lower_netns), p.lower_perm_mac.to_string(), p.macnat,
                 p.macnat_ageing);
}

std::string state_text(const State& state) {
  std::size_t records = 0;
  for (const auto& p : state.ports) records += p.devices.size() + 1;
  std::string out;
  out.reserve(256 + 192 * records);  // a device is about 170 bytes
  out += "{\"ports\":[";
  for (std::size_t i = 0; i < state.ports.size(); ++i) {
    if (i != 0) out += ',';
    put_port(out, state.ports[i]);
  }
  fmt::format_to(std::back_inserter(out), "],\"umacvlan_state\":{}}}\n", kFormatVersion);
  return out;
}

// Strict readers: anything missing or of the wrong type throws, and load()
// turns that into "corrupt".
template <typename T>
T get(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key))
    throw std::runtime_error(std::string("no \"") + key + "\"");
  return j.at(key).get<T>();
}

core::MacAddress get_mac(const json& j, const char* key) {
  const auto m = core::MacAddress::parse(get<std::string>(j, key));
  if (!m) throw std::runtime_error(std::string("bad MAC in \"") + key + "\"");
  return *m;
}

DeviceRecord device_from(const json& j) {
  DeviceRecord d;
  d.name = get<std::string>(j, "name");
  d.ifindex = get<int>(j, "ifindex");
  d.netns = static_cast<ino_t>(get<std::uint64_t>(j, "netns"));
  d.mac = get_mac(j, "mac");
  const auto mode = core::parse_mode(get<std::string>(j, "mode"));
  if (!mode) throw std::runtime_error("unknown mode");
  d.mode = *mode;
  d.flags = get<std::uint16_t>(j, "flags");
  d.bcqueuelen = get<std::uint32_t>(j, "bcqueuelen");
  for (const auto& s : get<json>(j, "sources")) {
    const auto m = core::MacAddress::parse(s.get<std::string>());
    if (!m) throw std::runtime_error("bad source MAC");
    d.sources.push_back(*m);
  }
  d.spoofchk = get<bool>(j, "spoofchk");
  d.mtu = get<std::uint32_t>(j, "mtu");
  d.up = get<bool>(j, "up");
  if (j.contains("pending")) d.pending = get<bool>(j, "pending");
  return d;
}

PortRecord port_from(const json& j) {
  PortRecord p;
  const json& lower = get<json>(j, "lower");
  p.lower_name = get<std::string>(lower, "name");
  p.lower_ifindex = get<int>(lower, "ifindex");
  p.lower_netns = static_cast<ino_t>(get<std::uint64_t>(lower, "netns"));
  p.lower_perm_mac = get_mac(lower, "perm_mac");
  p.bclim = get<std::int32_t>(j, "bclim");
  // Absent in files of earlier versions: off (and the default ageing).
  if (j.contains("hostaccess")) p.hostaccess = get<bool>(j, "hostaccess");
  if (j.contains("macnat")) p.macnat = get<bool>(j, "macnat");
  if (j.contains("macnat_ageing")) {
    // json's get<> converts any number (and wraps negatives): the ageing is
    // checked as the control protocol checks it.
    const json& a = j.at("macnat_ageing");
    if (!a.is_number_unsigned() || a.get<std::uint64_t>() < control::kMinMacnatAgeing ||
        a.get<std::uint64_t>() > control::kMaxMacnatAgeing)
      throw std::runtime_error("bad \"macnat_ageing\"");
    p.macnat_ageing = a.get<std::uint32_t>();
  }
  for (const auto& d : get<json>(j, "devices")) p.devices.push_back(device_from(d));
  return p;
}

int fail(std::string* error, int err, const std::string& what) {
  if (error != nullptr) *error = what + ": " + errno_text(err);
  return -err;
}

int make_dirs_for(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return 0;
  const std::string dir = path.substr(0, slash);
  for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    if (::mkdir(dir.substr(0, pos).c_str(), 0700) != 0 && errno != EEXIST) return -errno;
  }
  return 0;
}

// Writes text to path through path.tmp, renamed over path (no fsync: see
// the header; with them every link add paid two, of 0.2-0.5 ms each on
// this project's VMs, and more on a disk that honours them).
int write_atomically(const std::string& path, const std::string& text, std::string* error) {
  if (const int rc = make_dirs_for(path); rc < 0)
    return fail(error, -rc, "cannot create the directory of " + path);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(error, errno, "cannot write " + tmp);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(error, err, "cannot write " + tmp);
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail(error, err, "cannot rename " + tmp + " to " + path);
  }
  return 0;
}

bool same_lower(const PortRecord& a, const PortRecord& b) {
  return a.lower_netns == b.lower_netns && a.lower_ifindex == b.lower_ifindex &&
         a.lower_name == b.lower_name;
}

void merge_journal(State&& adds, State* into) {
  for (PortRecord& jp : adds.ports) {
    PortRecord* have = nullptr;
    for (PortRecord& p : into->ports) {
      if (same_lower(p, jp)) have = &p;
    }
    if (have == nullptr) {
      into->ports.push_back(std::move(jp));
      continue;
    }
    for (DeviceRecord& d : jp.devices) {
      bool known = false;
      for (const DeviceRecord& h : have->devices)
        known = known || (h.netns == d.netns && h.name == d.name);
      if (!known) have->devices.push_back(std::move(d));
    }
  }
}

// Reads a whole file into *text: kMissing, or kLoaded; -errno when it
// exists but cannot be read.
int read_text(const std::string& path, std::string* text, LoadResult* result, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) {
      *result = LoadResult::kMissing;
      return 0;
    }
    return fail(error, errno, "cannot read " + path);
  }
  std::stringstream all;
  all << in.rdbuf();
  *text = all.str();
  *result = LoadResult::kLoaded;
  return 0;
}

// Parses one state text: false with the reason in *why when it is not one.
bool parse_state(const std::string& text, State* out, std::string* why) {
  State s;
  try {
    const json j = json::parse(text);
    if (get<int>(j, "umacvlan_state") != kFormatVersion)
      throw std::runtime_error("unknown format version");
    for (const auto& p : get<json>(j, "ports")) s.ports.push_back(port_from(p));
  } catch (const std::exception& e) {
    *why = e.what();
    return false;
  }
  *out = std::move(s);
  return true;
}

// The journal's lines, each a state of one port with one device, merged in
// order. A last line without its newline is an append the daemon did not
// finish (it died in it, before the TAP and the answer): left out. Any
// other line that is not a state makes the journal corrupt.
bool merge_journal_text(const std::string& text, State* into, std::string* why) {
  std::size_t at = 0;
  for (std::size_t line = 1; at < text.size(); ++line) {
    const std::size_t end = text.find('\n', at);
    if (end == std::string::npos) break;  // unfinished
    State one;
    if (!parse_state(text.substr(at, end - at), &one, why)) {
      *why = "line " + std::to_string(line) + ": " + *why;
      return false;
    }
    merge_journal(std::move(one), into);
    at = end + 1;
  }
  return true;
}

// Moves a corrupt file aside (PATH.corrupt-UNIXTIME); its new name in *aside.
int move_aside(const std::string& path, std::string* aside, std::string* error) {
  *aside = path + ".corrupt-" + std::to_string(std::time(nullptr));
  if (::rename(path.c_str(), aside->c_str()) != 0)
    return fail(error, errno, "cannot move the corrupt " + path + " aside");
  return 0;
}

}  // namespace

std::string journal_path(const std::string& path) {
  return path + ".adds";
}

int save_state(const std::string& path, const State& state, std::string* error) {
  if (const int rc = write_atomically(path, state_text(state), error); rc < 0) return rc;
  // Everything the journal held is in the file now.
  if (::unlink(journal_path(path).c_str()) != 0 && errno != ENOENT)
    return fail(error, errno, "cannot remove " + journal_path(path));
  return 0;
}

int append_journal(const std::string& path, const PortRecord& add, std::string* error) {
  State one;
  one.ports.push_back(add);
  const std::string text = state_text(one);  // one line, with its newline
  const std::string jpath = journal_path(path);
  if (const int rc = make_dirs_for(jpath); rc < 0)
    return fail(error, -rc, "cannot create the directory of " + jpath);
  const int fd = ::open(jpath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return fail(error, errno, "cannot write " + jpath);
  // One write: O_APPEND puts it whole at the end.
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = n < 0 ? errno : EIO;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return fail(error, err, "cannot append to " + jpath);
  return 0;
}

int remove_state(const std::string& path) {
  int rc = 0;
  for (const std::string& p : {path, journal_path(path)}) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT && rc == 0) rc = -errno;
  }
  return rc;
}

int load_state(const std::string& path, State* out, LoadResult* result, std::string* error) {
  State s;
  std::string text, why, said;
  if (const int rc = read_text(path, &text, result, error); rc < 0) return rc;
  if (*result == LoadResult::kLoaded && !parse_state(text, &s, &why)) {
    *result = LoadResult::kCorrupt;
    std::string aside;
    if (const int rc = move_aside(path, &aside, error); rc < 0) return rc;
    said = path + " is not a valid state (" + why + "); moved to " + aside;
  }
  // The journal: adds the file may not hold yet. After a corrupt file it is
  // left out too (its devices alone would be a part of the state taken for
  // the whole), and removed by the next save.
  const std::string jpath = journal_path(path);
  LoadResult jresult = LoadResult::kMissing;
  if (*result != LoadResult::kCorrupt && read_text(jpath, &text, &jresult, error) == 0 &&
      jresult == LoadResult::kLoaded) {
    State merged = s;
    if (merge_journal_text(text, &merged, &why)) {
      s = std::move(merged);
      *result = LoadResult::kLoaded;
    } else {
      std::string aside;
      if (move_aside(jpath, &aside, error) == 0)
        said = jpath + " is not a valid journal (" + why + "); moved to " + aside;
    }
  }
  if (!said.empty() && error != nullptr) *error = said;
  *out = *result == LoadResult::kCorrupt ? State{} : std::move(s);
  return 0;
}

}  // namespace umacvlan::daemon
