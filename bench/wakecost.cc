// wakecost: what this machine charges for the two things every frame
// through a userspace forwarder pays and the kernel's macvlan does not, for
// bench/run.sh to print beside its table:
//   - a system call (getppid(2), the cheapest there is);
//   - a wake-up round trip: a thread blocked in read(2) on a pipe is woken
//     by a one-byte write, answers through a second pipe, and the first
//     thread, blocked in turn, is woken by that answer. Measured with both
//     threads pinned to one CPU, and with the two on two different CPUs.
// A ping through umacvlan costs at least one such round trip (ping wakes
// the daemon's worker, the worker wakes ping with the reply) plus the
// worker's system calls; the kernel's macvlan answers inside ping's own
// send call. So where these figures are large (a VM whose system calls and
// cross-CPU wake-ups go through the hypervisor), ping's ratio to the
// kernel's is large too, whatever the forwarder does.
//
//   wakecost
//       Prints one JSON object: {"syscall_us":..,"wake_rtt_same_cpu_us":..,
//       "wake_rtt_cross_cpu_us":..} (microseconds, each the median of 5
//       batches; the cross-CPU figure is null with fewer than two CPUs
//       allowed). Takes about a second. Exit status 1 if a thread or a pipe
//       could not be made.
//
// It never decides anything: bench/run.sh records what it prints.
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <vector>

namespace {

double now_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

bool pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

// The median of five batches of f(n), each batch's time over n, in us.
template <typename F>
double median_us(int n, F&& f) {
  std::array<double, 5> per{};
  for (double& p : per) {
    const double t0 = now_ns();
    f(n);
    p = (now_ns() - t0) / n / 1000.0;
  }
  std::ranges::sort(per);
  return per[per.size() / 2];
}

double syscall_us() {
  return median_us(100000, [](int n) {
    for (int i = 0; i < n; ++i) ::syscall(SYS_getppid);
  });
}

struct Echo {
  int ping[2] = {-1, -1};  // the measuring thread writes, the echo reads
  int pong[2] = {-1, -1};  // the echo writes, the measuring thread reads
  int cpu = 0;
  bool pinned = false;
};

void* echo_main(void* arg) {
  auto& e = *static_cast<Echo*>(arg);
  e.pinned = pin(e.cpu);
  char c;
  while (::read(e.ping[0], &c, 1) == 1)
    if (::write(e.pong[1], &c, 1) != 1) break;
  return nullptr;
}

// Round trips between this thread on cpu_a and an echo thread on cpu_b.
std::optional<double> wake_rtt_us(int cpu_a, int cpu_b) {
  Echo e;
  e.cpu = cpu_b;
  if (::pipe(e.ping) != 0 || ::pipe(e.pong) != 0) return std::nullopt;
  std::optional<double> result;
  pthread_t t;
  if (pin(cpu_a) && ::pthread_create(&t, nullptr, echo_main, &e) == 0) {
    char c = 'x';
    bool ok = true;
    auto round_trips = [&](int n) {
      for (int i = 0; i < n && ok; ++i)
        ok = ::write(e.ping[1], &c, 1) == 1 && ::read(e.pong[0], &c, 1) == 1;
    };
    round_trips(200);  // both threads placed and warm
    const double us = median_us(4000, round_trips);
    ::close(e.ping[1]);  // the echo's read gets 0: it returns
    e.ping[1] = -1;
    ::pthread_join(t, nullptr);
    if (ok && e.pinned) result = us;
  }
  for (int fd : {e.ping[0], e.ping[1], e.pong[0], e.pong[1]})
    if (fd >= 0) ::close(fd);
  return result;
}

}  // namespace

int main() {
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  if (cpus.empty()) return 1;

  const double sys = syscall_us();
  const std::optional<double> same = wake_rtt_us(cpus[0], cpus[0]);
  std::optional<double> cross;
  if (cpus.size() >= 2) {
    cross = wake_rtt_us(cpus[0], cpus[1]);
    if (!cross) return 1;
  }
  if (!same) return 1;
  std::printf("{\"syscall_us\":%.2f,\"wake_rtt_same_cpu_us\":%.2f,\"wake_rtt_cross_cpu_us\":", sys,
              *same);
  if (cross)
    std::printf("%.2f}\n", *cross);
  else
    std::printf("null}\n");
  return 0;
}
