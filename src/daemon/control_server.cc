#include "daemon/control_server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "control/control_channel.h"

namespace umacvlan::daemon {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr int kEventsPerTurn = 32;

control::Reply failure(int err, std::string message) {
  control::Reply r;
  r.error = err;
  r.message = std::move(message);
  return r;
}

// recvmsg() of what is there, without waiting; a passed descriptor goes to
// *netns when it has none yet, any other is closed. Bytes read, 0 at EOF, or
// -errno (-EAGAIN: nothing now).
ssize_t read_some(int fd, char* buf, std::size_t size, io::OwnedFd* netns) {
  iovec iov{buf, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (!netns->valid()) {
        netns->reset(received);
      } else {
        ::close(received);
      }
    }
  }
  return n;
}

}  // namespace

ControlServer::~ControlServer() {
  if (listen_.valid() && !path_.empty()) ::unlink(path_.c_str());
}

int ControlServer::open(const std::string& path, Handler handler, ControlServer* out,
                        Limits limits) {
  ControlServer s;
  const int fd = control::listen_unix(path);
  if (fd < 0) return fd;
  s.listen_.reset(fd);
  s.path_ = path;
  s.handler_ = std::move(handler);
  s.limits_ = limits;
  s.epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!s.epoll_.valid()) return -errno;
  // Non-blocking accept: a client that gave up between the wakeup and the
  // accept must not leave us waiting for the next one.
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(s.epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return -errno;
  *out = std::move(s);
  return 0;
}

void ControlServer::set_events(int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
}

void ControlServer::accept_all() {
  for (;;) {
    const int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays queued
      // and the socket stays readable. Stop watching it for a while rather
      // than spin; the clients already here can still finish and free fds.
      ++stats_.accept_errors;
      if (stats_.accept_errors == 1 || stats_.accept_errors % 1000 == 0)
        spdlog::warn("control socket: cannot accept ({}); pausing {} ms (seen {} times)",
                     std::strerror(errno), kAcceptRetryMs, stats_.accept_errors);
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listen_.get(), nullptr);
      accepting_ = false;
      accept_resume_ = Clock::now() + std::chrono::milliseconds(kAcceptRetryMs);
      return;
    }
    ++stats_.accepted;
    if (clients_.size() >= limits_.max_clients) {
      ++stats_.over_capacity;
      ::close(fd);
      continue;
    }
    auto c = std::make_unique<Client>();
    c->fd.reset(fd);
    c->deadline = Clock::now() + std::chrono::milliseconds(limits_.request_timeout_ms);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) continue;  // c closes fd
    Client& client = *c;
    clients_.emplace(fd, std::move(c));
    if (!control::peer_allowed(fd)) {
      ++stats_.refused_peer;
      answer(client, failure(EPERM,
                             "Error: umacvlan needs root or CAP_NET_ADMIN: the daemon refused "
                             "this request."));
    }
  }
}

void ControlServer::answer(Client& c, const control::Reply& reply) {
  std::string line;
  try {
    line = control::to_json(reply).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception& e) {
    line = control::to_json(failure(EIO, "Error: the reply could not be encoded.")).dump();
  }
  line.push_back('\n');
  // Before whatever a stream's owner queued already.
  line.append(c.out, c.sent, std::string::npos);
  c.out = std::move(line);
  c.sent = 0;
  c.writing = true;
  c.in.clear();
  c.netns.reset();
  c.deadline = c.stream != 0 ? Clock::time_point::max()
                             : Clock::now() + std::chrono::milliseconds(limits_.reply_timeout_ms);
  set_events(c.fd.get(), EPOLLOUT);
  on_writable(c);
}

void ControlServer::on_writable(Client& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      close_client(c.fd.get());
      return;
    }
    c.sent += static_cast<std::size_t>(n);
  }
  if (c.stream != 0 && !c.ending) {
    // Everything sent: wait for more lines, or for the client to go.
    c.out.clear();
    c.sent = 0;
    set_events(c.fd.get(), EPOLLIN | EPOLLRDHUP);
    return;
  }
  close_client(c.fd.get());
}

void ControlServer::on_stream_event(Client& c, std::uint32_t events) {
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
    // A stream's client has nothing more to say: what it sends is read
    // and dropped; its end ends the stream.
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      close_client(c.fd.get());
      return;
    }
  }
  if ((events & EPOLLOUT) != 0 || c.sent < c.out.size()) on_writable(c);
}

bool ControlServer::send_line(StreamId id, std::string_view line) {
  auto s = streams_.find(id);
  if (s == streams_.end()) return false;
  auto it = clients_.find(s->second);
  if (it == clients_.end()) return false;
  Client& c = *it->second;
  if (c.ending) return false;
  if (c.sent > 0 && c.sent * 2 >= c.out.size()) {
    c.out.erase(0, c.sent);
    c.sent = 0;
  }
  if (c.out.size() - c.sent + line.size() + 1 > limits_.max_stream_buffer) return false;
  const bool idle = c.sent == c.out.size();
  c.out.append(line);
  c.out.push_back('\n');
  if (idle) {
    // The first line goes at once; the rest when the socket takes it.
    set_events(c.fd.get(), EPOLLIN | EPOLLRDHUP | EPOLLOUT);
  }
  return true;
}

void ControlServer::end_stream(StreamId id) {
  auto s = streams_.find(id);
  if (s == streams_.end()) return;
  auto it = clients_.find(s->second);
  if (it == clients_.end()) return;
  Client& c = *it->second;
  c.ending = true;
  c.deadline = Clock::now() + std::chrono::milliseconds(limits_.reply_timeout_ms);
  set_events(c.fd.get(), EPOLLOUT);
}

void ControlServer::on_readable(Client& c) {
  char buf[kReadChunk];
  for (;;) {
    const ssize_t n = read_some(c.fd.get(), buf, sizeof buf, &c.netns);
    if (n == -EAGAIN || n == -EWOULDBLOCK) return;
    if (n <= 0) {
      // Gone before its request was whole: nobody to answer.
      close_client(c.fd.get());
      return;
    }
    const char* nl = static_cast<const char*>(std::memchr(buf, '\n', static_cast<std::size_t>(n)));
    const std::size_t take = nl != nullptr ? static_cast<std::size_t>(nl - buf) : n;
    if (c.in.size() + take > limits_.max_request_bytes) {
      ++stats_.too_large;
      answer(c, failure(EMSGSIZE, "Error: request larger than " +
                                      std::to_string(limits_.max_request_bytes) + " bytes."));
      return;
    }
    c.in.append(buf, take);
    if (nl == nullptr) continue;

    // A whole request: decode it strictly, then hand it on.
    control::Reply reply;
    const auto json = nlohmann::json::parse(c.in, nullptr, /*allow_exceptions=*/false);
    control::LinkRequest req;
    std::string why;
    io::NetnsFd caller(c.netns.release());
    if (json.is_discarded()) {
      ++stats_.malformed;
      reply = failure(EPROTO, "Error: malformed request: not JSON.");
    } else if (!control::from_json(json, &req, &why)) {
      ++stats_.malformed;
      reply = failure(EINVAL, "Error: malformed request: " + why + ".");
    } else if (!caller.valid()) {
      ++stats_.malformed;
      reply = failure(EINVAL, "Error: request without the caller's network namespace.");
    } else if (control::streaming(req.op) && streams_.size() >= limits_.max_streams) {
      ++stats_.served;
      ++stats_.refused;
      reply =
          failure(EBUSY, "Error: the daemon already serves " + std::to_string(limits_.max_streams) +
                             " captures and monitors; end one first.");
    } else {
      ++stats_.served;
      try {
        reply = handler_(req, caller);
        ++(reply.error == 0 ? stats_.ok : stats_.refused);
      } catch (const std::exception& e) {
        ++stats_.handler_errors;
        spdlog::error("internal error while serving \"link {}\": {}", control::to_string(req.op),
                      e.what());
        reply = failure(
            EIO, std::string("Error: internal error in the umacvlan daemon: ") + e.what() + ".");
      } catch (...) {
        ++stats_.handler_errors;
        spdlog::error("internal error while serving \"link {}\"", control::to_string(req.op));
        reply = failure(EIO, "Error: internal error in the umacvlan daemon.");
      }
    }
    if (reply.error == 0 && control::streaming(req.op)) {
      const StreamId id = next_stream_++;
      c.stream = id;
      streams_.emplace(id, c.fd.get());
      ++stats_.streams;
      // The stream is live before its reply leaves: what happens after the
      // client has the reply is in the stream.
      if (stream_opened_) stream_opened_(id, req, caller);
      answer(c, reply);
      return;
    }
    answer(c, reply);
    return;
  }
}

void ControlServer::close_client(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  const StreamId stream = it->second->stream;
  clients_.erase(it);
  if (stream != 0 && streams_.erase(stream) != 0 && stream_closed_) stream_closed_(stream);
}

void ControlServer::expire(Clock::time_point now) {
  std::vector<int> late;
  for (const auto& [fd, c] : clients_) {
    if (c->deadline <= now) late.push_back(fd);
  }
  for (int fd : late) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) continue;
    Client& c = *it->second;
    ++stats_.timed_out;
    if (c.writing) {
      close_client(fd);
    } else {
      answer(c, failure(ETIMEDOUT, "Error: the request did not arrive within " +
                                       std::to_string(limits_.request_timeout_ms) + " ms."));
      // A client that does not read its reply is dropped at once.
      if (clients_.count(fd) != 0) close_client(fd);
    }
  }
}

void ControlServer::process() {
  if (!accepting_ && Clock::now() >= accept_resume_) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_.get();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listen_.get(), &ev);
    accepting_ = true;
  }
  epoll_event evs[kEventsPerTurn];
  const int n = ::epoll_wait(epoll_.get(), evs, kEventsPerTurn, 0);
  for (int i = 0; i < n; ++i) {
    const int fd = evs[i].data.fd;
    if (fd == listen_.get()) {
      accept_all();
      continue;
    }
    auto it = clients_.find(fd);
    if (it == clients_.end()) continue;
    Client& c = *it->second;
    if (c.stream != 0) {
      on_stream_event(c, evs[i].events);
    } else if (c.writing) {
      on_writable(c);
    } else if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
      on_readable(c);
    }
  }
  expire(Clock::now());
}

int ControlServer::next_timeout_ms() const {
  Clock::time_point next = Clock::time_point::max();
  for (const auto& [fd, c] : clients_) next = std::min(next, c->deadline);
  if (!accepting_) next = std::min(next, accept_resume_);
  if (next == Clock::time_point::max()) return -1;
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
  return ms <= 0 ? 0 : static_cast<int>(ms) + 1;
}

}  // namespace umacvlan::daemon
