#include "io/cpu_load.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <utility>

namespace umacvlan::io {
namespace {

// Reads one unsigned number at text[pos...], skipping spaces first.
bool next_number(std::string_view text, std::size_t* pos, std::uint64_t* out) {
  while (*pos < text.size() && text[*pos] == ' ') ++*pos;
  const char* begin = text.data() + *pos;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(begin, end, *out);
  if (ec != std::errc{} || ptr == begin) return false;
  *pos += static_cast<std::size_t>(ptr - begin);
  return true;
}

}  // namespace

std::vector<CpuTimes> parse_cpu_times(std::string_view text) {
  std::vector<CpuTimes> cpus;
  parse_cpu_times(text, &cpus);
  return cpus;
}

void parse_cpu_times(std::string_view text, std::vector<CpuTimes>* out) {
  std::vector<CpuTimes>& cpus = *out;
  cpus.clear();
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (line.size() < 4 || line.substr(0, 3) != "cpu") continue;
    if (line[3] == ' ') continue;  // the summary line
    std::size_t pos = 3;
    std::uint64_t cpu = 0;
    if (!next_number(line, &pos, &cpu) || cpu > 65535) continue;
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user and nice)
    std::uint64_t v[8] = {};
    bool ok = true;
    for (std::uint64_t& x : v) ok = ok && next_number(line, &pos, &x);
    if (!ok) continue;
    if (cpus.size() <= cpu) cpus.resize(cpu + 1);
    const std::uint64_t idle = v[3] + v[4];
    std::uint64_t total = 0;
    for (const std::uint64_t x : v) total += x;
    cpus[cpu] = CpuTimes{total - idle, total};
  }
}

int CpuLoad::open() {
  fd_.reset(::open("/proc/stat", O_RDONLY | O_CLOEXEC));
  if (!fd_.valid()) return -errno;
  text_.resize(16384);
  return 0;
}

int CpuLoad::sample(std::vector<double>* busy) {
  if (!fd_.valid() || busy == nullptr) return -EBADF;
  std::size_t got = 0;
  for (;;) {
    const ssize_t n =
        ::pread(fd_.get(), text_.data() + got, text_.size() - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    got += static_cast<std::size_t>(n);
    if (n == 0 || got < text_.size()) break;
    text_.resize(text_.size() * 2);  // a machine with many CPUs
  }
  parse_cpu_times(std::string_view(text_.data(), got), &current_);
  const std::vector<CpuTimes>& now = current_;
  busy->assign(now.size(), -1.0);
  for (std::size_t c = 0; c < now.size() && c < previous_.size(); ++c) {
    const CpuTimes& a = previous_[c];
    const CpuTimes& b = now[c];
    if (a.total == 0 || b.total <= a.total || b.busy < a.busy) continue;
    (*busy)[c] = static_cast<double>(b.busy - a.busy) / static_cast<double>(b.total - a.total);
  }
  std::swap(previous_, current_);
  return 0;
}

}  // namespace umacvlan::io
