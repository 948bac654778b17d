// StateStore: the daemon's configuration on disk, so that a restart (clean
// or after kill -9) finds every port and device again.
//
// What is kept is what only umacvlan knows: which lower each device belongs
// to and its macvlan settings (mode, flags, source list, bcqueuelen, the
// port's bclim, hostaccess, macnat and its ageing, spoofchk), plus where
// each device and lower was last seen (namespace inode, ifindex, name) to
// find it again. What the kernel keeps itself (a device's current MAC, MTU,
// up/down, name) is recorded too, but at re-adoption the kernel's present
// view wins.
//
// Contract: save() writes the whole state (compact JSON, one line, keys
// sorted, as json::dump() would write it) atomically (a temporary file in
// the same directory, renamed over the file): after a crash of the daemon
// the file holds either the old or the new state, never a mix. There is no
// fsync: what the file describes (TAP devices) does not outlive the
// kernel, so the power loss or kernel crash that could lose the last writes
// takes every device they name with it, and against a crash of the daemon
// a completed write() is already what the next start reads. load() reads
// it strictly: a missing file is an empty state (kMissing); a file that is
// not a valid state is renamed to PATH.corrupt-UNIXTIME and reported as
// kCorrupt with the reason, the caller starting empty. Both return 0 or
// -errno with a sentence in *error; nothing throws.
//
// The journal (PATH.adds): append_journal() adds one line to it, a state
// of one port with one device in the file's format, so that a `link add`
// costs the write of its own record, not of every device (the whole state
// is then written at the daemon's next tick). save() removes the journal
// once the whole state is on disk, and load() merges its lines, in order,
// into what it read: a port of the same lower (namespace, ifindex and name)
// takes the line's device unless it holds one of that namespace and name
// already; a line of another lower adds its port. A last line without its
// newline was cut short by a crash in the append (before the TAP was made,
// and before any answer) and is left out. A journal with any other line
// that is not a state is moved aside (PATH.adds.corrupt-UNIXTIME) and left
// out, with the reason in *error; the result is then that of the file alone.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "control/control_protocol.h"
#include "core/mac_address.h"
#include "core/mode.h"

namespace umacvlan::daemon {

struct DeviceRecord {
  std::string name;
  int ifindex = 0;
  ino_t netns = 0;  // inode of the namespace it lives in
  core::MacAddress mac;
  core::Mode mode = core::Mode::kVepa;
  std::uint16_t flags = 0;
  std::uint32_t bcqueuelen = 0;
  std::vector<core::MacAddress> sources;
  bool spoofchk = false;
  std::uint32_t mtu = 0;
  bool up = false;
  // Written before a `link add` makes its TAP (`name` in `netns`): a
  // restart that finds the TAP adopts it (the add was done but for the
  // answer), one that does not drops the record.
  bool pending = false;
  bool operator==(const DeviceRecord&) const = default;
};

struct PortRecord {
  std::string lower_name;
  int lower_ifindex = 0;
  ino_t lower_netns = 0;
  core::MacAddress lower_perm_mac;  // given back when the port goes (passthru)
  std::int32_t bclim = 0;
  bool hostaccess = false;  // its LOWER.host is one of the devices
  bool macnat = false;      // frames leave the lower with its MAC
  std::uint32_t macnat_ageing = control::kDefaultMacnatAgeing;  // seconds
  std::vector<DeviceRecord> devices;
  bool operator==(const PortRecord&) const = default;
};

struct State {
  std::vector<PortRecord> ports;
  bool operator==(const State&) const = default;
};

enum class LoadResult { kLoaded, kMissing, kCorrupt };

int save_state(const std::string& path, const State& state, std::string* error);
// add: the lower's port record with the one device added.
int append_journal(const std::string& path, const PortRecord& add, std::string* error);
// PATH.adds, the journal of the state file at path.
std::string journal_path(const std::string& path);
// Removes the state file and its journal (0, or -errno of the first failure
// other than ENOENT).
int remove_state(const std::string& path);
// Returns 0 (also for kMissing and kCorrupt, with *result saying which) or
// -errno when the file exists but cannot be read or moved aside.
int load_state(const std::string& path, State* out, LoadResult* result, std::string* error);

}  // namespace umacvlan::daemon
