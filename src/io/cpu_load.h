// CpuLoad: how busy each CPU was between two looks, from /proc/stat.
//
// Contract: open() opens /proc/stat once; sample() reads it again (one
// pread, parsed into vectors it keeps: after the first two samples it
// allocates nothing, unless *busy must grow) and gives, for each
// CPU, the share of time it was not idle since the previous sample: 0..1,
// or -1 where that is unknown (the first sample, a CPU that appeared, no
// time passed). Idle is the idle and iowait columns; everything else
// (user, system, interrupts, a hypervisor's steal) is busy. One thread at a
// time. parse_cpu_times() is the parser alone, for tests. Nothing throws;
// errors are -errno.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/owned_fd.h"

namespace umacvlan::io {

struct CpuTimes {
  std::uint64_t busy = 0;   // clock ticks not idle
  std::uint64_t total = 0;  // clock ticks, 0: no line for this CPU
};

// The "cpuN ..." lines of /proc/stat's text, indexed by N (the summary
// "cpu" line is skipped); a line that does not parse is left out. The
// second form fills *out, reusing its storage.
std::vector<CpuTimes> parse_cpu_times(std::string_view text);
void parse_cpu_times(std::string_view text, std::vector<CpuTimes>* out);

class CpuLoad {
 public:
  int open();
  int sample(std::vector<double>* busy);

 private:
  OwnedFd fd_;
  std::string text_;
  std::vector<CpuTimes> previous_, current_;
};

}  // namespace umacvlan::io
