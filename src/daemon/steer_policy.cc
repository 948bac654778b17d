#include "daemon/steer_policy.h"

namespace umacvlan::daemon {

std::vector<std::optional<std::uint32_t>> decide_steering(const SteerSample& s) {
  const std::size_t cpus = s.busy.size();
  std::vector<std::optional<std::uint32_t>> next(cpus);
  for (std::size_t c = 0; c < cpus && c < s.away.size(); ++c) next[c] = s.away[c];
  auto share = [&](std::uint32_t w) { return w < s.worker_share.size() ? s.worker_share[w] : 0.0; };
  auto saturated = [&](std::size_t c) { return c < s.saturated.size() && s.saturated[c] != 0; };

  for (std::size_t c = 0; c < cpus; ++c) {
    if (next[c] && share(*next[c]) >= kWorkerShare) continue;
    next[c].reset();
    if (!saturated(c) || c >= s.own.size() || share(s.own[c]) < kWorkerShare) continue;
    std::optional<std::uint32_t> to;
    for (std::size_t w = 0; w < s.worker_cpu.size(); ++w) {
      const int wc = s.worker_cpu[w];
      if (w == s.own[c] || wc < 0 || static_cast<std::size_t>(wc) >= cpus) continue;
      const auto cpu = static_cast<std::size_t>(wc);
      if (s.busy[cpu] < 0 || saturated(cpu) || next[cpu]) continue;
      if (!to || s.busy[cpu] < s.busy[static_cast<std::size_t>(s.worker_cpu[*to])])
        to = static_cast<std::uint32_t>(w);
    }
    next[c] = to;
  }
  return next;
}

}  // namespace umacvlan::daemon
