// udpblast: a small UDP sender/receiver for bench/run.sh, for the 64-byte
// frame rates (22 bytes of UDP payload) that iperf3 cannot drive: iperf3
// sends one datagram per write(2) from one thread and refuses payloads
// below its 16-byte header plus its own framing, so at this size it
// measures itself. Here the sender hands the kernel batches of datagrams
// with sendmmsg(2) and the receiver drains them with recvmmsg(2).
//
//   udpblast send --dst IP --port P --seconds S [--len N] [--rate PPS] [--dev IF]
//                 [--gso K]
//       Sends N-byte datagrams to IP:P for S seconds, as fast as it can or
//       at PPS datagrams a second (paced per millisecond). SO_BROADCAST is
//       set, so IP may be a broadcast address (255.255.255.255 needs --dev,
//       the device to send it out of). With --gso K, each send hands the
//       kernel K datagrams at once (UDP_SEGMENT, as QUIC stacks send): one
//       super-frame that a device with UDP segmentation offload passes on
//       whole; "sent" still counts datagrams. Prints one JSON object:
//       {"sent":..,"seconds":..,"errors":..}.
//   udpblast recv --port P [--wait S] [--idle S] [--ready FILE]
//       Binds 0.0.0.0:P (16 MiB receive buffer), creates FILE once bound,
//       waits at most S seconds for the first datagram, counts until none
//       has come for --idle seconds. Prints {"received":..,"window":..,
//       "rate":..}: the count, the seconds from the first datagram to the
//       last one, and their ratio (datagrams delivered per second).
//
// It never decides anything: bench/run.sh records what it prints.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

constexpr unsigned kBatch = 64;
constexpr int kRcvBuf = 16 << 20;

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void sleep_until(double t) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(t);
  ts.tv_nsec = static_cast<long>((t - static_cast<double>(ts.tv_sec)) * 1e9);
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

int send_loop(const std::string& dst, const std::string& dev, int port, double seconds,
              unsigned len, double rate, unsigned gso) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int one = 1;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || inet_pton(AF_INET, dst.c_str(), &to.sin_addr) != 1 ||
      setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0 ||
      (!dev.empty() && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev.c_str(), dev.size()) != 0) ||
      connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    std::fprintf(stderr, "udpblast send: %s: %s\n", dst.c_str(), std::strerror(errno));
    return 2;
  }
  const unsigned per_send = std::max(gso, 1u);
  if (gso > 0) {
    const int segment = static_cast<int>(len);
    if (setsockopt(fd, SOL_UDP, UDP_SEGMENT, &segment, sizeof segment) != 0) {
      std::fprintf(stderr, "udpblast send: UDP_SEGMENT %u: %s\n", len, std::strerror(errno));
      return 2;
    }
  }
  std::vector<char> payload(static_cast<std::size_t>(len) * per_send, 'u');
  iovec iov{payload.data(), payload.size()};
  std::vector<mmsghdr> msgs(kBatch);
  for (auto& m : msgs) {
    m.msg_hdr = {};
    m.msg_hdr.msg_iov = &iov;
    m.msg_hdr.msg_iovlen = 1;
  }
  // Paced: at most one millisecond's worth per batch, so the rate is even.
  unsigned batch = kBatch;
  if (rate > 0) batch = std::max(1u, std::min(kBatch, static_cast<unsigned>(rate / 1000)));
  std::uint64_t sent = 0, errors = 0;
  const double start = now(), end = start + seconds;
  double t = start;
  while (t < end) {
    unsigned n = batch;
    if (rate > 0) {
      const double due = (t - start) * rate - static_cast<double>(sent);
      if (due < 1) {
        sleep_until(std::min(end, t + (1 - due) / rate));
        t = now();
        continue;
      }
      n = std::min<unsigned>(batch, static_cast<unsigned>(due));
    }
    if (gso > 0) n = std::max(1u, n / per_send);
    const int r = sendmmsg(fd, msgs.data(), n, 0);
    if (r > 0) {
      sent += static_cast<std::uint64_t>(r) * per_send;
    } else {
      ++errors;  // ENOBUFS, or ECONNREFUSED from an ICMP error: keep going
    }
    t = now();
  }
  std::printf("{\"sent\": %llu, \"seconds\": %.6f, \"errors\": %llu}\n",
              static_cast<unsigned long long>(sent), t - start,
              static_cast<unsigned long long>(errors));
  close(fd);
  return 0;
}

int recv_loop(int port, double wait, double idle, const std::string& ready) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(static_cast<uint16_t>(port));
  at.sin_addr.s_addr = htonl(INADDR_ANY);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0) {
    std::fprintf(stderr, "udpblast recv: port %d: %s\n", port, std::strerror(errno));
    return 2;
  }
  // SO_RCVBUFFORCE (root) goes past net.core.rmem_max; fall back quietly.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kRcvBuf, sizeof kRcvBuf) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kRcvBuf, sizeof kRcvBuf);
  if (!ready.empty()) std::ofstream(ready) << "ready\n";

  constexpr unsigned kRecvBatch = 256;
  std::vector<std::array<char, 2048>> bufs(kRecvBatch);
  std::vector<iovec> iovs(kRecvBatch);
  std::vector<mmsghdr> msgs(kRecvBatch);
  for (unsigned i = 0; i < kRecvBatch; ++i) {
    iovs[i] = {bufs[i].data(), bufs[i].size()};
    msgs[i].msg_hdr = {};
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  std::uint64_t received = 0;
  double first = 0, last = 0;
  const double give_up = now() + wait;
  for (;;) {
    const int r = recvmmsg(fd, msgs.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
    if (r > 0) {
      last = now();
      if (received == 0) first = last;
      received += static_cast<unsigned>(r);
      continue;
    }
    const double limit = received ? last + idle : give_up;
    const double left = limit - now();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    poll(&p, 1, static_cast<int>(left * 1000) + 1);
  }
  const double window = last - first;
  std::printf("{\"received\": %llu, \"window\": %.6f, \"rate\": %.1f}\n",
              static_cast<unsigned long long>(received), window,
              window > 0 ? static_cast<double>(received) / window : 0.0);
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"UDP sender/receiver for bench/run.sh"};
  app.require_subcommand(1);
  std::string dst, dev, ready;
  int port = 9000;
  double seconds = 4, rate = 0, wait = 30, idle = 1;
  unsigned len = 22, gso = 0;
  auto* send = app.add_subcommand("send", "send datagrams");
  send->add_option("--dst", dst, "destination IPv4 address")->required();
  send->add_option("--port", port, "destination UDP port");
  send->add_option("--seconds", seconds, "how long to send");
  send->add_option("--len", len, "UDP payload bytes (22: a 64-byte frame)");
  send->add_option("--rate", rate, "datagrams per second (0: as fast as possible)");
  send->add_option("--dev", dev, "device to send out of (SO_BINDTODEVICE)");
  send->add_option("--gso", gso, "datagrams per send, as one UDP_SEGMENT super-frame")
      ->check(CLI::Range(0u, 64u));
  auto* recv = app.add_subcommand("recv", "count datagrams");
  recv->add_option("--port", port, "UDP port to bind");
  recv->add_option("--wait", wait, "seconds to wait for the first datagram");
  recv->add_option("--idle", idle, "stop after this many seconds without one");
  recv->add_option("--ready", ready, "file to create once bound");
  CLI11_PARSE(app, argc, argv);
  if (send->parsed()) return send_loop(dst, dev, port, seconds, len, rate, gso);
  return recv_loop(port, wait, idle, ready);
}
