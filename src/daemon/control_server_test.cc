// Real Unix sockets in a temporary directory; no namespaces, no devices.
#include "daemon/control_server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>
#include <vector>

#include "control/control_channel.h"

namespace umacvlan::daemon {
namespace {

using namespace std::chrono_literals;

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/umv-cs-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/s.sock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void open(ControlServer::Handler h, ControlLimits limits = {}) {
    ASSERT_EQ(ControlServer::open(path_, std::move(h), &server_, limits), 0);
  }

  // Runs the server loop until done() or the timeout.
  bool pump(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      pollfd p{server_.fd(), POLLIN, 0};
      const int next = server_.next_timeout_ms();
      ::poll(&p, 1, next < 0 || next > 10 ? 10 : next);
      server_.process();
    }
    return true;
  }

  // Connects, sends raw bytes with our namespace fd, returns the socket.
  int connect_and_send(const std::string& bytes) {
    const int fd = control::connect_unix(path_);
    EXPECT_GE(fd, 0);
    const int ns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &ns, sizeof ns);
    if (!bytes.empty()) {
      EXPECT_GT(::sendmsg(fd, &msg, MSG_NOSIGNAL), 0);
    }
    ::close(ns);
    return fd;
  }

  static std::string request_line(const std::string& name = "mv0") {
    control::LinkRequest r;
    r.op = control::LinkOp::kShow;
    r.name = name;
    return control::to_json(r).dump() + "\n";
  }

  // Reads the reply (the server runs on another thread meanwhile).
  control::Reply read_reply(int fd) {
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    nlohmann::json j;
    int passed = -1;
    control::Reply r;
    r.error = -1;
    if (control::recv_message(fd, &j, &passed) != 0) return r;
    std::string why;
    EXPECT_TRUE(control::from_json(j, &r, &why)) << why;
    return r;
  }

  std::string dir_;
  std::string path_;
  ControlServer server_;
};

control::Reply ok_reply(const std::string& message) {
  control::Reply r;
  r.message = message;
  return r;
}

TEST_F(ControlServerTest, ServesARequestWithTheCallersNamespace) {
  int seen_ns = -1;
  std::string seen_name;
  open([&](const control::LinkRequest& req, const io::NetnsFd& caller) {
    seen_name = req.name;
    seen_ns = caller.valid() ? 1 : 0;
    return ok_reply("fine");
  });
  const int fd = connect_and_send(request_line("dev7"));
  control::Reply reply;
  std::atomic<bool> got{false};
  std::thread client([&] {
    reply = read_reply(fd);
    got = true;
  });
  EXPECT_TRUE(pump([&] { return got.load(); }));
  client.join();
  ::close(fd);
  EXPECT_EQ(reply.error, 0);
  EXPECT_EQ(reply.message, "fine");
  EXPECT_EQ(seen_name, "dev7");
  EXPECT_EQ(seen_ns, 1);
  EXPECT_TRUE(pump([&] { return server_.clients() == 0; }));
  EXPECT_EQ(server_.stats().served, 1u);
  EXPECT_EQ(server_.stats().ok, 1u);
  EXPECT_EQ(server_.stats().refused, 0u);
}

TEST_F(ControlServerTest, ASlowClientDoesNotHoldUpTheNextOne) {
  int served = 0;
  open([&](const control::LinkRequest&, const io::NetnsFd&) {
    ++served;
    return ok_reply("x");
  });
  const std::string line = request_line();
  // The slow one sends the first byte and then nothing.
  const int slow = connect_and_send(line.substr(0, 1));
  EXPECT_TRUE(pump([&] { return server_.clients() == 1; }));
  const int fast = connect_and_send(line);
  control::Reply reply;
  std::atomic<bool> got{false};
  std::thread client([&] {
    reply = read_reply(fast);
    got = true;
  });
  EXPECT_TRUE(pump([&] { return got.load(); }, 2s));
  client.join();
  EXPECT_EQ(reply.error, 0);
  EXPECT_EQ(served, 1);
  EXPECT_EQ(server_.clients(), 1u) << "the slow one is still waited for";
  ::close(slow);
  ::close(fast);
}

TEST_F(ControlServerTest, AnIncompleteRequestTimesOutWithAnAnswer) {
  ControlLimits limits;
  limits.request_timeout_ms = 200;
  open([](const control::LinkRequest&, const io::NetnsFd&) { return ok_reply(""); }, limits);
  const int fd = connect_and_send("{\"op\":");
  control::Reply reply;
  std::atomic<bool> got{false};
  std::thread client([&] {
    reply = read_reply(fd);
    got = true;
  });
  EXPECT_TRUE(pump([&] { return got.load(); }));
  client.join();
  ::close(fd);
  EXPECT_EQ(reply.error, ETIMEDOUT);
  EXPECT_NE(reply.message.find("did not arrive"), std::string::npos) << reply.message;
  EXPECT_EQ(server_.stats().timed_out, 1u);
  EXPECT_TRUE(pump([&] { return server_.clients() == 0; }));
}

TEST_F(ControlServerTest, AnOversizeRequestIsRefusedAndNeverHandled) {
  ControlLimits limits;
  limits.max_request_bytes = 64 * 1024;
  int served = 0;
  open(
      [&](const control::LinkRequest&, const io::NetnsFd&) {
        ++served;
        return ok_reply("");
      },
      limits);
  const int fd = connect_and_send("");
  control::Reply reply;
  std::atomic<bool> got{false};
  std::thread client([&] {
    // 10 MB without a newline, sent while the server reads; it stops reading.
    const std::string chunk(64 * 1024, 'a');
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (int i = 0; i < 160; ++i) {
      if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
    }
    reply = read_reply(fd);
    got = true;
  });
  EXPECT_TRUE(pump([&] { return got.load(); }, 10s));
  client.join();
  ::close(fd);
  EXPECT_EQ(reply.error, EMSGSIZE);
  EXPECT_EQ(served, 0);
  EXPECT_EQ(server_.stats().too_large, 1u);
}

TEST_F(ControlServerTest, AClientThatNeverReadsItsReplyIsDropped) {
  ControlLimits limits;
  limits.reply_timeout_ms = 200;
  open(
      [](const control::LinkRequest&, const io::NetnsFd&) {
        control::Reply r;
        // Far more than a socket buffer holds.
        for (int i = 0; i < 20000; ++i) r.links.push_back({{"ifname", std::string(200, 'x')}});
        return r;
      },
      limits);
  const int fd = connect_and_send(request_line());
  EXPECT_TRUE(pump([&] { return server_.stats().served == 1; }));
  EXPECT_TRUE(pump([&] { return server_.clients() == 0; }, 3s));
  EXPECT_EQ(server_.stats().timed_out, 1u);
  ::close(fd);
}

TEST_F(ControlServerTest, AHandlerExceptionBecomesAnErrorAndTheServerGoesOn) {
  int calls = 0;
  open([&](const control::LinkRequest& req, const io::NetnsFd&) -> control::Reply {
    ++calls;
    if (req.name == "boom") throw std::runtime_error("injected fault");
    return ok_reply("after");
  });
  for (const char* name : {"boom", "fine"}) {
    const int fd = connect_and_send(request_line(name));
    control::Reply reply;
    std::atomic<bool> got{false};
    std::thread client([&] {
      reply = read_reply(fd);
      got = true;
    });
    EXPECT_TRUE(pump([&] { return got.load(); }));
    client.join();
    ::close(fd);
    if (std::string(name) == "boom") {
      EXPECT_EQ(reply.error, EIO);
      EXPECT_NE(reply.message.find("injected fault"), std::string::npos) << reply.message;
    } else {
      EXPECT_EQ(reply.error, 0);
      EXPECT_EQ(reply.message, "after");
    }
  }
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(server_.stats().handler_errors, 1u);
  // The failed one is an error, neither ok nor refused (the metrics' result).
  EXPECT_EQ(server_.stats().ok, 1u);
  EXPECT_EQ(server_.stats().refused, 0u);
}

TEST_F(ControlServerTest, MalformedRequestsAreAnsweredNotHandled) {
  int served = 0;
  open([&](const control::LinkRequest&, const io::NetnsFd&) {
    ++served;
    return ok_reply("");
  });
  struct Case {
    std::string line;
    int error;
  };
  for (const Case& c :
       {Case{"not json\n", EPROTO}, Case{"{\"op\":\"fly\"}\n", EINVAL}, Case{"[1,2]\n", EINVAL}}) {
    const int fd = connect_and_send(c.line);
    control::Reply reply;
    std::atomic<bool> got{false};
    std::thread client([&] {
      reply = read_reply(fd);
      got = true;
    });
    EXPECT_TRUE(pump([&] { return got.load(); }));
    client.join();
    ::close(fd);
    EXPECT_EQ(reply.error, c.error) << c.line;
  }
  EXPECT_EQ(served, 0);
  EXPECT_EQ(server_.stats().malformed, 3u);
}

TEST_F(ControlServerTest, ClientsBeyondTheLimitAreClosedAtOnce) {
  ControlLimits limits;
  limits.max_clients = 2;
  open([](const control::LinkRequest&, const io::NetnsFd&) { return ok_reply(""); }, limits);
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) fds.push_back(connect_and_send(""));
  EXPECT_TRUE(pump([&] { return server_.stats().accepted == 4; }));
  EXPECT_EQ(server_.clients(), 2u);
  EXPECT_EQ(server_.stats().over_capacity, 2u);
  for (int fd : fds) ::close(fd);
}

std::string stream_request() {
  control::LinkRequest r;
  r.op = control::LinkOp::kMonitor;
  return control::to_json(r).dump() + "\n";
}

// Reads until n newlines arrived, or 5 s.
std::string read_lines(int fd, int n) {
  std::string got;
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (std::count(got.begin(), got.end(), '\n') < n && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t k = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (k <= 0) break;
    got.append(buf, static_cast<std::size_t>(k));
  }
  return got;
}

TEST_F(ControlServerTest, AStreamStaysOpenAfterItsReplyAndCarriesLines) {
  std::vector<ControlServer::StreamId> opened, closed;
  open([](const control::LinkRequest&, const io::NetnsFd&) { return ok_reply(""); });
  server_.set_stream_handlers(
      [&](ControlServer::StreamId id, const control::LinkRequest& req, const io::NetnsFd& ns) {
        EXPECT_EQ(req.op, control::LinkOp::kMonitor);
        EXPECT_TRUE(ns.valid());
        opened.push_back(id);
        // Queued as the stream opens: it follows the reply.
        EXPECT_TRUE(server_.send_line(id, R"({"type":"zero"})"));
      },
      [&](ControlServer::StreamId id) { closed.push_back(id); });
  const int fd = connect_and_send(stream_request());
  ASSERT_TRUE(pump([&] { return !opened.empty(); }));
  EXPECT_EQ(server_.streams(), 1u);
  EXPECT_EQ(server_.clients(), 0u);          // streams are not pending clients
  EXPECT_EQ(server_.next_timeout_ms(), -1);  // and have no deadline
  EXPECT_TRUE(server_.send_line(opened[0], R"({"type":"one"})"));
  EXPECT_TRUE(server_.send_line(opened[0], R"({"type":"two"})"));
  std::string got;
  std::thread reader([&] { got = read_lines(fd, 4); });
  pump([&] { return std::count(got.begin(), got.end(), '\n') >= 4; }, 2s);
  reader.join();
  EXPECT_EQ(got,
            "{\"error\":0,\"links\":[]}\n{\"type\":\"zero\"}\n{\"type\":\"one\"}\n{\"type\":"
            "\"two\"}\n");
  // The client goes: the owner hears of it, and lines go nowhere.
  ::close(fd);
  ASSERT_TRUE(pump([&] { return !closed.empty(); }));
  EXPECT_EQ(closed, opened);
  EXPECT_EQ(server_.streams(), 0u);
  EXPECT_FALSE(server_.send_line(opened[0], "{}"));
}

TEST_F(ControlServerTest, AStreamThatIsNotReadLosesLinesAndNeverBlocks) {
  ControlLimits limits;
  limits.max_stream_buffer = 64 * 1024;
  std::vector<ControlServer::StreamId> opened;
  open([](const control::LinkRequest&, const io::NetnsFd&) { return ok_reply(""); }, limits);
  server_.set_stream_handlers([&](ControlServer::StreamId id, const control::LinkRequest&,
                                  const io::NetnsFd&) { opened.push_back(id); },
                              [](ControlServer::StreamId) {});
  const int fd = connect_and_send(stream_request());
  ASSERT_TRUE(pump([&] { return !opened.empty(); }));
  const std::string line(1000, 'x');
  std::size_t sent = 0, refused = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5000; ++i) {
    (server_.send_line(opened[0], line) ? sent : refused)++;
    server_.process();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  // What the socket and the buffer hold went; the rest was refused.
  EXPECT_GT(sent, 0u);
  EXPECT_GT(refused, 0u);
  EXPECT_EQ(sent + refused, 5000u);
  ::close(fd);
}

TEST_F(ControlServerTest, EndStreamSendsWhatIsQueuedThenCloses) {
  std::vector<ControlServer::StreamId> opened, closed;
  open([](const control::LinkRequest&, const io::NetnsFd&) { return ok_reply(""); });
  server_.set_stream_handlers([&](ControlServer::StreamId id, const control::LinkRequest&,
                                  const io::NetnsFd&) { opened.push_back(id); },
                              [&](ControlServer::StreamId id) { closed.push_back(id); });
  const int fd = connect_and_send(stream_request());
  ASSERT_TRUE(pump([&] { return !opened.empty(); }));
  EXPECT_TRUE(server_.send_line(opened[0], R"({"type":"end"})"));
  server_.end_stream(opened[0]);
  EXPECT_FALSE(server_.send_line(opened[0], R"({"type":"late"})"));
  ASSERT_TRUE(pump([&] { return !closed.empty(); }));
  const std::string got = read_lines(fd, 10);  // to EOF
  EXPECT_EQ(got, "{\"error\":0,\"links\":[]}\n{\"type\":\"end\"}\n");
  ::close(fd);
}

TEST_F(ControlServerTest, StreamsBeyondTheLimitAreRefusedBeforeTheHandler) {
  ControlLimits limits;
  limits.max_streams = 1;
  int handled = 0;
  std::vector<ControlServer::StreamId> opened;
  open(
      [&](const control::LinkRequest&, const io::NetnsFd&) {
        ++handled;
        return ok_reply("");
      },
      limits);
  server_.set_stream_handlers([&](ControlServer::StreamId id, const control::LinkRequest&,
                                  const io::NetnsFd&) { opened.push_back(id); },
                              [](ControlServer::StreamId) {});
  const int first = connect_and_send(stream_request());
  ASSERT_TRUE(pump([&] { return opened.size() == 1; }));
  const int second = connect_and_send(stream_request());
  control::Reply reply;
  std::atomic<bool> got{false};
  std::thread client([&] {
    reply = read_reply(second);
    got = true;
  });
  pump([&] { return got.load(); });
  client.join();
  EXPECT_EQ(reply.error, EBUSY);
  EXPECT_EQ(handled, 1);
  EXPECT_EQ(opened.size(), 1u);
  ::close(first);
  ::close(second);
}

}  // namespace
}  // namespace umacvlan::daemon
