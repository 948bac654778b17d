#include "daemon/metrics.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <iterator>
#include <utility>

#include "daemon/control_server.h"
#include "daemon/link_service.h"

namespace umacvlan::daemon {
namespace {

using namespace std::chrono_literals;

// The label sets of one family's series, pre-rendered ("{a=\"x\",b=\"y\"}").
class Family {
 public:
  Family(std::string& out, std::string_view name, std::string_view type, std::string_view help)
      : out_(out), name_(name) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  // labels: already escaped pairs, rendered as given.
  template <typename V>
  void sample(std::string_view labels, V value) {
    fmt::format_to(std::back_inserter(out_), "{}{} {}\n", name_, labels, value);
  }

 private:
  std::string& out_;
  std::string_view name_;
};

std::string device_labels(const MetricsSnapshot::Device& d) {
  return fmt::format("{{port=\"{}\",device=\"{}\",netns=\"{}\",mode=\"{}\"}}",
                     escape_label_value(d.port), escape_label_value(d.device),
                     escape_label_value(d.netns), escape_label_value(d.mode));
}

std::string port_labels(const MetricsSnapshot::Port& p) {
  return fmt::format("{{port=\"{}\"}}", escape_label_value(p.port));
}

}  // namespace

MetricsSnapshot take_metrics(const LinkService& links, const Dataplane& dataplane,
                             const ControlServer& server, double start_time) {
  MetricsSnapshot s;
  links.metrics(&s);
  for (std::size_t w = 0; w < dataplane.workers(); ++w)
    s.workers.push_back(dataplane.worker_counters(w));
  const ControlServer::Stats& st = server.stats();
  s.control.ok = st.ok;
  s.control.refused = st.refused + st.refused_peer;
  s.control.error = st.malformed + st.too_large + st.timed_out + st.handler_errors;
  s.start_time_seconds = start_time;
  s.readopted_devices = links.readopted_count();
  return s;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string render_metrics(const MetricsSnapshot& s) {
  std::string out;
  out.reserve(512 + s.devices.size() * 1200 + s.ports.size() * 1500);

  std::vector<std::string> dl;
  dl.reserve(s.devices.size());
  for (const auto& d : s.devices) dl.push_back(device_labels(d));
  // Device families, as `ip -s link show` of the device counts (what
  // `umacvlan -s link show` prints): rx is what the device received.
  struct DeviceFamily {
    std::string_view name;
    std::string_view help;
    std::uint64_t core::DeviceCounters::*field;
  };
  static constexpr DeviceFamily kDeviceFamilies[] = {
      {"umacvlan_device_rx_packets_total",
       "Frames delivered to the device (its RX packets in `umacvlan -s link show`).",
       &core::DeviceCounters::rx_packets},
      {"umacvlan_device_rx_bytes_total", "Bytes delivered to the device.",
       &core::DeviceCounters::rx_bytes},
      {"umacvlan_device_rx_multicast_packets_total",
       "Multicast and broadcast copies delivered to the device (part of rx_packets).",
       &core::DeviceCounters::rx_multicast},
      {"umacvlan_device_rx_dropped_total", "Copies for the device that could not be delivered.",
       &core::DeviceCounters::rx_dropped},
      {"umacvlan_device_tx_packets_total", "Frames the device sent that were forwarded.",
       &core::DeviceCounters::tx_packets},
      {"umacvlan_device_tx_bytes_total", "Bytes the device sent that were forwarded.",
       &core::DeviceCounters::tx_bytes},
      {"umacvlan_device_tx_dropped_total", "Frames the device sent that were dropped.",
       &core::DeviceCounters::tx_dropped},
  };
  for (const auto& f : kDeviceFamilies) {
    Family fam(out, f.name, "counter", f.help);
    for (std::size_t i = 0; i < s.devices.size(); ++i)
      fam.sample(dl[i], s.devices[i].counters.*f.field);
  }

  {
    Family fam(out, "umacvlan_devices", "gauge", "Devices on the port.");
    for (const auto& p : s.ports) fam.sample(port_labels(p), p.devices);
  }
  {
    Family fam(out, "umacvlan_port_drops_total", "counter",
               "Frames or copies dropped on the port, by reason.");
    for (const auto& p : s.ports) {
      const std::string port = escape_label_value(p.port);
      for (std::size_t r = 1; r < p.drops.drops.size(); ++r) {
        const auto reason = static_cast<core::DropReason>(r);
        fam.sample(fmt::format("{{port=\"{}\",reason=\"{}\"}}", port, core::to_string(reason)),
                   p.drops.drops[r]);
      }
    }
  }
  {
    Family fam(out, "umacvlan_port_bcqueue_length", "gauge",
               "Length of the port's broadcast queue (the used bcqueuelen: the largest any "
               "device asked for).");
    for (const auto& p : s.ports) fam.sample(port_labels(p), p.used_bcqueuelen);
  }
  {
    Family fam(out, "umacvlan_port_bcqueue_overflows_total", "counter",
               "Broadcasts dropped because the broadcast queue was full (the lower's rx_dropped; "
               "also reason=\"bc_queue_full\" of umacvlan_port_drops_total).");
    for (const auto& p : s.ports)
      fam.sample(port_labels(p), p.drops.drops_for(core::DropReason::kBcQueueFull));
  }

  {
    Family fam(out, "umacvlan_worker_frames_total", "counter",
               "Frames a dataplane worker read, from lowers and from devices.");
    for (std::size_t w = 0; w < s.workers.size(); ++w)
      fam.sample(fmt::format("{{worker=\"{}\"}}", w),
                 s.workers[w].lower_rx_frames + s.workers[w].tap_rx_frames);
  }
  {
    Family fam(out, "umacvlan_worker_busy_seconds_total", "counter",
               "Time a dataplane worker spent on turns with work (the rest it waited).");
    for (std::size_t w = 0; w < s.workers.size(); ++w)
      fam.sample(fmt::format("{{worker=\"{}\"}}", w),
                 static_cast<double>(s.workers[w].busy_ns) / 1e9);
  }
  {
    Family fam(out, "umacvlan_worker_bursts_total", "counter",
               "Bursts a dataplane worker handled (frames per burst: frames / bursts).");
    for (std::size_t w = 0; w < s.workers.size(); ++w)
      fam.sample(fmt::format("{{worker=\"{}\"}}", w), s.workers[w].bursts);
  }
  {
    Family fam(out, "umacvlan_worker_flood_shares_total", "counter",
               "Floods to many devices shared out between dataplane workers: out, handed to "
               "another worker; in, written for another worker.");
    for (std::size_t w = 0; w < s.workers.size(); ++w) {
      fam.sample(fmt::format("{{worker=\"{}\",direction=\"out\"}}", w), s.workers[w].shares_out);
      fam.sample(fmt::format("{{worker=\"{}\",direction=\"in\"}}", w), s.workers[w].shares_in);
    }
  }

  {
    Family fam(out, "umacvlan_control_requests_total", "counter",
               "Control requests answered: ok, refused (by the rules, the kernel or the peer "
               "check) or error (malformed, too large, timed out, internal error).");
    fam.sample("{result=\"ok\"}", s.control.ok);
    fam.sample("{result=\"refused\"}", s.control.refused);
    fam.sample("{result=\"error\"}", s.control.error);
  }
  {
    Family fam(out, "umacvlan_daemon_start_time_seconds", "gauge",
               "Start time of the daemon since the Unix epoch in seconds.");
    fam.sample("", fmt::format("{:.3f}", s.start_time_seconds));
  }
  {
    Family fam(out, "umacvlan_readopted_devices", "gauge",
               "Devices re-adopted from the state file at this start.");
    fam.sample("", s.readopted_devices);
  }
  return out;
}

bool parse_metrics_address(std::string_view text, MetricsAddress* out, std::string* why) {
  auto bad = [&](std::string_view what) {
    *why = fmt::format("\"{}\": {} (expected HOST:PORT, [IPV6]:PORT or :PORT)", text, what);
    return false;
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("no \"]:PORT\" after the IPv6 address");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.empty()) return bad("empty IPv6 address");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("an IPv6 address needs brackets");
  }
  int p = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535)
    return bad("the port must be a number from 1 to 65535");
  out->host = host.empty() ? "127.0.0.1" : std::string(host);
  out->port = p;
  return true;
}

std::string MetricsAddress::url() const {
  return host.find(':') != std::string::npos ? fmt::format("http://[{}]:{}/metrics", host, port)
                                             : fmt::format("http://{}:{}/metrics", host, port);
}

MetricsServer::MetricsServer() = default;

MetricsServer::~MetricsServer() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
    for (auto& p : waiting_) p.set_value(nullptr);
    waiting_.clear();
  }
  if (http_ != nullptr) http_->stop();
  if (thread_.joinable()) thread_.join();
}

int MetricsServer::open(const MetricsAddress& at, std::string* why, int wait_ms) {
  wait_ms_ = wait_ms;
  event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event_.valid()) {
    const int err = errno;
    *why = fmt::format("eventfd: {}", std::strerror(err));
    return -err;
  }
  http_ = std::make_unique<httplib::Server>();
  // Scrapes are rare and short: two threads, not one per CPU.
  http_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // daemon share the port silently.
  http_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http_->set_read_timeout(5, 0);
  http_->set_write_timeout(5, 0);
  http_->set_payload_max_length(4096);
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const std::shared_ptr<const MetricsSnapshot> snap = ask();
    if (snap == nullptr) {
      res.status = 503;
      res.set_content(fmt::format("umacvlan: the daemon's control thread did not answer within "
                                  "{} ms; try again\n",
                                  wait_ms_),
                      "text/plain; charset=utf-8");
      return;
    }
    res.set_content(render_metrics(*snap), "text/plain; version=0.0.4; charset=utf-8");
  });

  errno = 0;
  bool bound = false;
  if (at.port == 0) {
    port_ = http_->bind_to_any_port(at.host);
    bound = port_ > 0;
  } else {
    bound = http_->bind_to_port(at.host, at.port);
    port_ = at.port;
  }
  if (!bound) {
    const int err = errno != 0 ? errno : EADDRNOTAVAIL;
    *why =
        fmt::format("cannot listen for metrics on {}:{}: {}", at.host, at.port, std::strerror(err));
    http_.reset();
    return -err;
  }
  thread_ = std::thread([this] {
    http_->listen_after_bind();
    listening_done_ = true;
  });
  // httplib's stop() does nothing before the server runs: wait for that,
  // so that the destructor can always stop it.
  while (!http_->is_running() && !listening_done_) std::this_thread::sleep_for(1ms);
  return 0;
}

std::shared_ptr<const MetricsSnapshot> MetricsServer::ask() {
  std::future<std::shared_ptr<const MetricsSnapshot>> answer;
  {
    std::lock_guard lock(mutex_);
    if (closing_ || waiting_.size() >= kMaxWaiting) return nullptr;
    waiting_.emplace_back();
    answer = waiting_.back().get_future();
  }
  const std::uint64_t one = 1;
  (void)!::write(event_.get(), &one, sizeof one);
  // A late answer is not lost on anyone: the promise stays with the
  // control thread, which fulfils it into a future nobody reads.
  if (answer.wait_for(std::chrono::milliseconds(wait_ms_)) != std::future_status::ready)
    return nullptr;
  return answer.get();
}

void MetricsServer::serve(const Take& take) {
  std::uint64_t n = 0;
  (void)!::read(event_.get(), &n, sizeof n);
  std::vector<Pending> now;
  {
    std::lock_guard lock(mutex_);
    now.swap(waiting_);
  }
  if (now.empty()) return;
  auto snap = std::make_shared<const MetricsSnapshot>(take());
  for (auto& p : now) p.set_value(snap);
}

}  // namespace umacvlan::daemon
