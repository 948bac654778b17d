// The metrics text (escaping, HELP/TYPE, a known snapshot), the address
// parser, and the HTTP handover on 127.0.0.1 (an ephemeral port); no root.
#include "daemon/metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

namespace umacvlan::daemon {
namespace {

using namespace std::chrono_literals;

MetricsSnapshot known_snapshot() {
  MetricsSnapshot s;
  MetricsSnapshot::Device a;
  a.port = "lower0";
  a.device = "mva";
  a.netns = "ns-a";
  a.mode = "bridge";
  a.counters = {.rx_packets = 10,
                .rx_bytes = 1000,
                .rx_multicast = 2,
                .rx_dropped = 1,
                .tx_packets = 20,
                .tx_bytes = 2000,
                .tx_dropped = 3};
  s.devices.push_back(a);
  MetricsSnapshot::Port p;
  p.port = "lower0";
  p.devices = 1;
  p.used_bcqueuelen = 1000;
  p.drops.drops[static_cast<std::size_t>(core::DropReason::kRunt)] = 4;
  p.drops.drops[static_cast<std::size_t>(core::DropReason::kBcQueueFull)] = 5;
  s.ports.push_back(p);
  WorkerCounters w;
  w.lower_rx_frames = 7;
  w.tap_rx_frames = 8;
  w.bursts = 3;
  w.busy_ns = 250000000;
  w.shares_out = 6;
  w.shares_in = 2;
  s.workers.push_back(w);
  s.control = {.ok = 11, .refused = 2, .error = 1};
  s.start_time_seconds = 1764500000.25;
  s.readopted_devices = 1;
  return s;
}

constexpr const char* kKnownText =
    R"(# HELP umacvlan_device_rx_packets_total Frames delivered to the device (its RX packets in `umacvlan -s link show`).
# TYPE umacvlan_device_rx_packets_total counter
umacvlan_device_rx_packets_total{port="lower0",device="mva",netns="ns-a",mode="bridge"} 10
# HELP umacvlan_device_rx_bytes_total Bytes delivered to the device.
# TYPE umacvlan_device_rx_bytes_total counter
umacvlan_device_rx_bytes_total{port="lower0",device="mva",netns="ns-a",mode="bridge"} 1000
# HELP umacvlan_device_rx_multicast_packets_total Multicast and broadcast copies delivered to the device (part of rx_packets).
# TYPE umacvlan_device_rx_multicast_packets_total counter
umacvlan_device_rx_multicast_packets_total{port="lower0",device="mva",netns="ns-a",mode="bridge"} 2
# HELP umacvlan_device_rx_dropped_total Copies for the device that could not be delivered.
# TYPE umacvlan_device_rx_dropped_total counter
umacvlan_device_rx_dropped_total{port="lower0",device="mva",netns="ns-a",mode="bridge"} 1
# HELP umacvlan_device_tx_packets_total Frames the device sent that were forwarded.
# TYPE umacvlan_device_tx_packets_total counter
umacvlan_device_tx_packets_total{port="lower0",device="mva",netns="ns-a",mode="bridge"} 20
# HELP umacvlan_device_tx_bytes_total Bytes the device sent that were forwarded.
# TYPE umacvlan_device_tx_bytes_total counter
umacvlan_device_tx_bytes_total{port="lower0",device="mva",netns="ns-a",mode="bridge"} 2000
# HELP umacvlan_device_tx_dropped_total Frames the device sent that were dropped.
# TYPE umacvlan_device_tx_dropped_total counter
umacvlan_device_tx_dropped_total{port="lower0",device="mva",netns="ns-a",mode="bridge"} 3
# HELP umacvlan_devices Devices on the port.
# TYPE umacvlan_devices gauge
umacvlan_devices{port="lower0"} 1
# HELP umacvlan_port_drops_total Frames or copies dropped on the port, by reason.
# TYPE umacvlan_port_drops_total counter
umacvlan_port_drops_total{port="lower0",reason="runt"} 4
umacvlan_port_drops_total{port="lower0",reason="oversize"} 0
umacvlan_port_drops_total{port="lower0",reason="nodst"} 0
umacvlan_port_drops_total{port="lower0",reason="passthru_down"} 0
umacvlan_port_drops_total{port="lower0",reason="bc_queue_full"} 5
umacvlan_port_drops_total{port="lower0",reason="no_subscriber"} 0
umacvlan_port_drops_total{port="lower0",reason="unknown_sender"} 0
umacvlan_port_drops_total{port="lower0",reason="pause"} 0
umacvlan_port_drops_total{port="lower0",reason="spoofed"} 0
umacvlan_port_drops_total{port="lower0",reason="bad_vnet_header"} 0
umacvlan_port_drops_total{port="lower0",reason="too_big"} 0
umacvlan_port_drops_total{port="lower0",reason="io_error"} 0
umacvlan_port_drops_total{port="lower0",reason="lower_ring_full"} 0
# HELP umacvlan_port_bcqueue_length Length of the port's broadcast queue (the used bcqueuelen: the largest any device asked for).
# TYPE umacvlan_port_bcqueue_length gauge
umacvlan_port_bcqueue_length{port="lower0"} 1000
# HELP umacvlan_port_bcqueue_overflows_total Broadcasts dropped because the broadcast queue was full (the lower's rx_dropped; also reason="bc_queue_full" of umacvlan_port_drops_total).
# TYPE umacvlan_port_bcqueue_overflows_total counter
umacvlan_port_bcqueue_overflows_total{port="lower0"} 5
# HELP umacvlan_worker_frames_total Frames a dataplane worker read, from lowers and from devices.
# TYPE umacvlan_worker_frames_total counter
umacvlan_worker_frames_total{worker="0"} 15
# HELP umacvlan_worker_busy_seconds_total Time a dataplane worker spent on turns with work (the rest it waited).
# TYPE umacvlan_worker_busy_seconds_total counter
umacvlan_worker_busy_seconds_total{worker="0"} 0.25
# HELP umacvlan_worker_bursts_total Bursts a dataplane worker handled (frames per burst: frames / bursts).
# TYPE umacvlan_worker_bursts_total counter
umacvlan_worker_bursts_total{worker="0"} 3
# HELP umacvlan_worker_flood_shares_total Floods to many devices shared out between dataplane workers: out, handed to another worker; in, written for another worker.
# TYPE umacvlan_worker_flood_shares_total counter
umacvlan_worker_flood_shares_total{worker="0",direction="out"} 6
umacvlan_worker_flood_shares_total{worker="0",direction="in"} 2
# HELP umacvlan_control_requests_total Control requests answered: ok, refused (by the rules, the kernel or the peer check) or error (malformed, too large, timed out, internal error).
# TYPE umacvlan_control_requests_total counter
umacvlan_control_requests_total{result="ok"} 11
umacvlan_control_requests_total{result="refused"} 2
umacvlan_control_requests_total{result="error"} 1
# HELP umacvlan_daemon_start_time_seconds Start time of the daemon since the Unix epoch in seconds.
# TYPE umacvlan_daemon_start_time_seconds gauge
umacvlan_daemon_start_time_seconds 1764500000.250
# HELP umacvlan_readopted_devices Devices re-adopted from the state file at this start.
# TYPE umacvlan_readopted_devices gauge
umacvlan_readopted_devices 1
)";

TEST(MetricsText, KnownSnapshot) {
  EXPECT_EQ(render_metrics(known_snapshot()), kKnownText);
}

TEST(MetricsText, EscapesLabelValues) {
  EXPECT_EQ(escape_label_value("plain-name.0"), "plain-name.0");
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  MetricsSnapshot s;
  MetricsSnapshot::Device d;
  d.port = "net:[42]/lo\"w";
  d.device = "we\\ird\n";
  d.mode = "vepa";
  s.devices.push_back(d);
  const std::string text = render_metrics(s);
  EXPECT_NE(
      text.find(
          R"(umacvlan_device_rx_packets_total{port="net:[42]/lo\"w",device="we\\ird\n",netns="",mode="vepa"} 0)"),
      std::string::npos)
      << text;
}

// Every family has exactly one HELP and one TYPE, before its samples, and
// every line is one of those, a sample of the family announced last, and
// nothing else (what a Prometheus parser insists on).
TEST(MetricsText, HelpAndTypeBeforeEverySample) {
  MetricsSnapshot s = known_snapshot();
  s.devices.push_back(s.devices.front());
  s.devices.back().device = "mvb";
  s.workers.push_back(s.workers.front());
  std::istringstream in(render_metrics(s));
  std::string line, family, helped;
  std::set<std::string> seen;
  int samples = 0;
  while (std::getline(in, line)) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      helped = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(seen.insert(helped).second) << "second HELP for " << helped;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(family, helped);
      const std::string type = line.substr(line.rfind(' ') + 1);
      EXPECT_TRUE(type == "counter" || type == "gauge") << line;
      EXPECT_EQ(type == "counter", family.ends_with("_total")) << line;
      continue;
    }
    ASSERT_NE(line[0], '#') << line;
    const std::string name = line.substr(0, line.find_first_of("{ "));
    EXPECT_EQ(name, family) << line;
    ++samples;
  }
  EXPECT_GT(samples, 30);
}

TEST(MetricsAddress, Parses) {
  MetricsAddress at;
  std::string why;
  ASSERT_TRUE(parse_metrics_address(":9464", &at, &why)) << why;
  EXPECT_EQ(at.host, "127.0.0.1");
  EXPECT_EQ(at.port, 9464);
  ASSERT_TRUE(parse_metrics_address("0.0.0.0:80", &at, &why)) << why;
  EXPECT_EQ(at.host, "0.0.0.0");
  EXPECT_EQ(at.port, 80);
  EXPECT_EQ(at.url(), "http://0.0.0.0:80/metrics");
  ASSERT_TRUE(parse_metrics_address("[::1]:9464", &at, &why)) << why;
  EXPECT_EQ(at.host, "::1");
  EXPECT_EQ(at.url(), "http://[::1]:9464/metrics");
  ASSERT_TRUE(parse_metrics_address("localhost:1", &at, &why)) << why;
  EXPECT_EQ(at.host, "localhost");
  for (const char* bad :
       {"", "9464", ":", ":0", ":65536", ":94x", "::1:9464", "[::1]9464", "[]:1", "host:-1"}) {
    EXPECT_FALSE(parse_metrics_address(bad, &at, &why)) << bad;
    EXPECT_NE(why.find(std::string("\"") + bad + "\""), std::string::npos) << why;
  }
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void open(int wait_ms) {
    std::string why;
    ASSERT_EQ(server_.open(MetricsAddress{"127.0.0.1", 0}, &why, wait_ms), 0) << why;
    ASSERT_GT(server_.port(), 0);
  }
  // The control loop's part: serve whenever the eventfd says so, until stop_.
  void start_loop() {
    loop_ = std::thread([this] {
      while (!stop_) {
        pollfd p{server_.fd(), POLLIN, 0};
        if (::poll(&p, 1, 20) == 1) {
          server_.serve([this] {
            ++takes_;
            return known_snapshot();
          });
        }
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    if (loop_.joinable()) loop_.join();
  }

  MetricsServer server_;
  std::thread loop_;
  std::atomic<bool> stop_{false};
  std::atomic<int> takes_{0};
};

TEST_F(MetricsServerTest, ServesTheControlThreadsSnapshot) {
  open(2000);
  start_loop();
  httplib::Client client("127.0.0.1", server_.port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, kKnownText);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(takes_, 1);
  auto other = client.Get("/");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  EXPECT_EQ(takes_, 1);
}

TEST_F(MetricsServerTest, Answers503WhenTheControlThreadDoesNotServe) {
  open(200);
  httplib::Client client("127.0.0.1", server_.port());
  const auto t0 = std::chrono::steady_clock::now();
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  // The control thread comes back: the next scrape is served, the stale
  // request is fulfilled into nobody's future.
  start_loop();
  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(MetricsServer, SecondServerOnThePortFails) {
  MetricsServer a, b;
  std::string why;
  ASSERT_EQ(a.open(MetricsAddress{"127.0.0.1", 0}, &why), 0) << why;
  EXPECT_EQ(b.open(MetricsAddress{"127.0.0.1", a.port()}, &why), -EADDRINUSE);
  EXPECT_NE(why.find("cannot listen for metrics on 127.0.0.1:"), std::string::npos) << why;
}

TEST(MetricsServer, StoppingAnswersWhoeverWaits) {
  auto server = std::make_unique<MetricsServer>();
  std::string why;
  ASSERT_EQ(server->open(MetricsAddress{"127.0.0.1", 0}, &why, 10000), 0) << why;
  const int port = server->port();
  std::atomic<int> status{0};
  std::thread scrape([&] {
    httplib::Client client("127.0.0.1", port);
    auto res = client.Get("/metrics");
    status = res ? res->status : -1;
  });
  // Wait until the scrape is queued (the eventfd turns readable).
  pollfd p{server->fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  const auto t0 = std::chrono::steady_clock::now();
  server.reset();
  scrape.join();
  EXPECT_EQ(status, 503);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

}  // namespace
}  // namespace umacvlan::daemon
