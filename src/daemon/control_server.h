// ControlServer: the daemon's end of the control socket, served without ever
// blocking: a client that sends one byte a second, never sends its request,
// never reads its reply, disconnects half way or sends megabytes costs the
// daemon a buffer and a deadline, never a wait.
//
// Contract
// - open() listens on a Unix socket (control::listen_unix(): mode 0600) and
//   keeps its own epoll fd; the caller's loop watches fd() and calls
//   process() when it is readable, and at the latest after
//   next_timeout_ms(). process() accepts, reads, answers and expires what is
//   ready and returns without waiting.
// - One request per connection, as the CLI sends it: one JSON line with the
//   caller's network namespace as SCM_RIGHTS (control_channel.h). The peer is
//   checked at accept (control::peer_allowed()); a peer that may not drive
//   the daemon gets an EPERM reply, and its request is never read.
// - Bounds: a request longer than ControlLimits::max_request_bytes gets an EMSGSIZE
//   reply; one not complete within request_timeout_ms gets an ETIMEDOUT
//   reply; a reply not taken within reply_timeout_ms is dropped with the
//   connection. Beyond max_clients the newest connection is closed at once.
//   When the process is out of file descriptors, accepting pauses for
//   kAcceptRetryMs instead of spinning on the listening socket.
// - The handler runs on the calling thread, once per complete, well-formed
//   request; an exception out of it becomes an EIO reply ("internal error")
//   and is counted, and the server goes on.
// - Streams (control::streaming(op): capture, monitor): when the handler
//   answers such a request with success, the connection stays open after
//   the reply. The server calls on_stream_open(id, request, caller) before
//   it sends the reply (lines the owner queues then follow the reply), and
//   from then on the owner sends lines with send_line(id, ...); the
//   client's own bytes are read and ignored; the stream ends when the
//   client closes (on_stream_closed(id) is called) or the owner calls
//   end_stream(id) (the queued lines are still sent, within
//   reply_timeout_ms). A stream never makes the server wait: lines beyond
//   max_stream_buffer unsent bytes are refused (send_line() returns false,
//   the owner counts them as lost). Beyond max_streams open streams a new
//   one is refused with EBUSY before the handler sees it. Streams have no
//   deadline and do not count against max_clients.
// - The socket file is removed by the destructor. Single-threaded.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "control/control_protocol.h"
#include "io/netns.h"
#include "io/owned_fd.h"

namespace umacvlan::daemon {

struct ControlLimits {
  std::size_t max_request_bytes = 1u << 20;
  int request_timeout_ms = 5000;
  int reply_timeout_ms = 5000;
  std::size_t max_clients = 64;
  std::size_t max_streams = 16;
  std::size_t max_stream_buffer = 1u << 20;
};

class ControlServer {
 public:
  using Handler =
      std::function<control::Reply(const control::LinkRequest&, const io::NetnsFd& caller)>;
  using Clock = std::chrono::steady_clock;
  using StreamId = std::uint64_t;
  using StreamOpened =
      std::function<void(StreamId, const control::LinkRequest&, const io::NetnsFd& caller)>;
  using StreamClosed = std::function<void(StreamId)>;

  static constexpr int kAcceptRetryMs = 100;

  using Limits = ControlLimits;

  struct Stats {
    std::uint64_t accepted = 0;
    std::uint64_t served = 0;        // requests handed to the handler
    std::uint64_t ok = 0;            // of those, answered with success
    std::uint64_t refused = 0;       // of those, answered with an errno (nothing changed)
    std::uint64_t refused_peer = 0;  // not root, no CAP_NET_ADMIN
    std::uint64_t malformed = 0;     // not JSON, not a request, no namespace
    std::uint64_t too_large = 0;
    std::uint64_t timed_out = 0;
    std::uint64_t handler_errors = 0;  // exceptions caught
    std::uint64_t accept_errors = 0;   // EMFILE and friends
    std::uint64_t over_capacity = 0;   // closed beyond max_clients
    std::uint64_t streams = 0;         // streams opened
  };

  ControlServer() = default;
  ~ControlServer();
  ControlServer(ControlServer&&) noexcept = default;
  ControlServer& operator=(ControlServer&&) noexcept = default;

  // 0 or -errno (as control::listen_unix()).
  static int open(const std::string& path, Handler handler, ControlServer* out,
                  Limits limits = Limits{});

  void set_stream_handlers(StreamOpened opened, StreamClosed closed) {
    stream_opened_ = std::move(opened);
    stream_closed_ = std::move(closed);
  }
  // Queues one line (a '\n' is added) on stream id; false when the stream
  // is gone or its buffer is full (the line is not sent).
  bool send_line(StreamId id, std::string_view line);
  // Closes stream id once its queued lines are sent.
  void end_stream(StreamId id);
  std::size_t streams() const { return streams_.size(); }

  int fd() const { return epoll_.get(); }
  void process();
  // Milliseconds until the next deadline (0 if one passed), -1 if none.
  int next_timeout_ms() const;
  std::size_t clients() const { return clients_.size() - streams_.size(); }
  const Stats& stats() const { return stats_; }

 private:
  struct Client {
    io::OwnedFd fd;
    io::OwnedFd netns;  // passed with the request
    std::string in;
    std::string out;
    std::size_t sent = 0;
    bool writing = false;
    StreamId stream = 0;  // non-zero: a stream
    bool ending = false;  // a stream closed once out is sent
    Clock::time_point deadline;
  };

  void accept_all();
  void on_readable(Client& c);
  void on_writable(Client& c);
  // Queues reply (switching the client to writing) and tries to send it.
  void answer(Client& c, const control::Reply& reply);
  void close_client(int fd);
  void on_stream_event(Client& c, std::uint32_t events);
  void expire(Clock::time_point now);
  void set_events(int fd, std::uint32_t events);

  std::string path_;
  Handler handler_;
  Limits limits_;
  io::OwnedFd listen_;
  io::OwnedFd epoll_;
  bool accepting_ = true;
  Clock::time_point accept_resume_;
  std::map<int, std::unique_ptr<Client>> clients_;
  std::map<StreamId, int> streams_;  // to the client's fd
  StreamId next_stream_ = 1;
  StreamOpened stream_opened_;
  StreamClosed stream_closed_;
  Stats stats_;
};

}  // namespace umacvlan::daemon
