#include "control/control_channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace umacvlan::control {
namespace {

using nlohmann::json;

class Pair : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0);
  }
  void TearDown() override {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  void close_writer() {
    ::close(fds_[0]);
    fds_[0] = -1;
  }
  void close_reader() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }
  void write_raw(const std::string& bytes) {
    ASSERT_EQ(::write(fds_[0], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  int a() const { return fds_[0]; }
  int b() const { return fds_[1]; }

 private:
  int fds_[2] = {-1, -1};
};

int count_open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

// A fresh directory under the test's temp dir, removed by the test.
std::string temp_dir() {
  std::string tmpl = ::testing::TempDir() + "umv-channel-XXXXXX";
  char* made = ::mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  return tmpl;
}

TEST_F(Pair, MessageRoundTrips) {
  const json sent = json::parse(R"({"op":"add","name":"m0","nested":{"x":[1,2,"three"]}})");
  ASSERT_EQ(send_message(a(), sent), 0);
  json got;
  int fd = 123;
  ASSERT_EQ(recv_message(b(), &got, &fd), 0);
  EXPECT_EQ(got, sent);
  EXPECT_EQ(fd, -1);
}

TEST_F(Pair, OneMessageIsOneLine) {
  ASSERT_EQ(send_message(a(), json::parse(R"({"text":"line1\nline2"})")), 0);
  close_writer();
  std::string raw(256, '\0');
  const ssize_t n = ::read(b(), raw.data(), raw.size());
  ASSERT_GT(n, 0);
  raw.resize(static_cast<std::size_t>(n));
  EXPECT_EQ(raw, "{\"text\":\"line1\\nline2\"}\n");
}

TEST_F(Pair, BackToBackMessagesAreReadOneAtATime) {
  ASSERT_EQ(send_message(a(), json{{"n", 1}}), 0);
  ASSERT_EQ(send_message(a(), json{{"n", 2}}), 0);
  ASSERT_EQ(send_message(a(), json{{"n", 3}}), 0);
  for (int i = 1; i <= 3; ++i) {
    json got;
    int fd = -1;
    ASSERT_EQ(recv_message(b(), &got, &fd), 0);
    EXPECT_EQ(got.at("n"), i);
  }
}

TEST_F(Pair, PassesAFileDescriptor) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  ASSERT_EQ(send_message(a(), json{{"op", "show"}}, pipe_fds[1]), 0);
  ::close(pipe_fds[1]);  // the sender keeps ownership; the receiver gets its own copy
  json got;
  int passed = -1;
  ASSERT_EQ(recv_message(b(), &got, &passed), 0);
  ASSERT_GE(passed, 0);
  EXPECT_EQ(got.at("op"), "show");
  EXPECT_NE(::fcntl(passed, F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(::write(passed, "ok", 2), 2);
  ::close(passed);
  char buf[2];
  ASSERT_EQ(::read(pipe_fds[0], buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "ok");
  ::close(pipe_fds[0]);
}

TEST_F(Pair, PassesTheNetworkNamespace) {
  const int ns = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ns, 0);
  ASSERT_EQ(send_message(a(), json{{"op", "show"}}, ns), 0);
  json got;
  int passed = -1;
  ASSERT_EQ(recv_message(b(), &got, &passed), 0);
  struct stat mine {};
  struct stat theirs {};
  ASSERT_EQ(::fstat(ns, &mine), 0);
  ASSERT_EQ(::fstat(passed, &theirs), 0);
  EXPECT_EQ(mine.st_ino, theirs.st_ino);
  ::close(ns);
  ::close(passed);
}

TEST_F(Pair, MegabyteMessageWithDescriptor) {
  json big = json::object();
  big["blob"] = std::string(1 << 20, 'x');
  big["tail"] = "end";
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  int send_rc = -1;
  // Bigger than a socket buffer: the writer must run while we read.
  std::thread writer([&] { send_rc = send_message(a(), big, pipe_fds[0]); });
  json got;
  int passed = -1;
  const int rc = recv_message(b(), &got, &passed);
  writer.join();
  EXPECT_EQ(send_rc, 0);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(got, big);
  EXPECT_GE(passed, 0);
  if (passed >= 0) ::close(passed);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST_F(Pair, BadJsonIsEproto) {
  write_raw("{not json}\n");
  json got;
  int fd = -1;
  EXPECT_EQ(recv_message(b(), &got, &fd), -EPROTO);
  EXPECT_EQ(fd, -1);
}

TEST_F(Pair, EmptyLineIsEproto) {
  write_raw("\n");
  json got;
  int fd = -1;
  EXPECT_EQ(recv_message(b(), &got, &fd), -EPROTO);
}

TEST_F(Pair, BadJsonClosesThePassedDescriptor) {
  const int before = count_open_fds();
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  // Send garbage with a descriptor by hand.
  const std::string garbage = "]]\n";
  iovec iov{const_cast<char*>(garbage.data()), garbage.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &pipe_fds[0], sizeof(int));
  ASSERT_EQ(::sendmsg(a(), &msg, 0), static_cast<ssize_t>(garbage.size()));
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  json got;
  int fd = 77;
  EXPECT_EQ(recv_message(b(), &got, &fd), -EPROTO);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(count_open_fds(), before);
}

TEST_F(Pair, ExtraDescriptorsAreClosed) {
  int p1[2];
  int p2[2];
  ASSERT_EQ(::pipe2(p1, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(p2, O_CLOEXEC), 0);
  const std::string line = "{\"op\":\"show\"}\n";
  iovec iov{const_cast<char*>(line.data()), line.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(2 * sizeof(int));
  const int two[2] = {p1[1], p2[1]};
  std::memcpy(CMSG_DATA(c), two, sizeof(two));
  ASSERT_EQ(::sendmsg(a(), &msg, 0), static_cast<ssize_t>(line.size()));
  ::close(p1[1]);
  ::close(p2[1]);
  json got;
  int passed = -1;
  ASSERT_EQ(recv_message(b(), &got, &passed), 0);
  ASSERT_GE(passed, 0);
  ::close(passed);
  // Every write end is closed now: the second descriptor was not leaked.
  char buf;
  EXPECT_EQ(::read(p1[0], &buf, 1), 0);
  EXPECT_EQ(::read(p2[0], &buf, 1), 0);
  ::close(p1[0]);
  ::close(p2[0]);
}

TEST_F(Pair, CleanCloseIsEnodata) {
  close_writer();
  json got;
  int fd = -1;
  EXPECT_EQ(recv_message(b(), &got, &fd), -ENODATA);
}

TEST_F(Pair, CloseInsideAMessageIsEconnreset) {
  write_raw("{\"op\":");
  close_writer();
  json got;
  int fd = -1;
  EXPECT_EQ(recv_message(b(), &got, &fd), -ECONNRESET);
}

TEST_F(Pair, TimeoutIsEagain) {
  timeval tv{0, 20000};
  ASSERT_EQ(::setsockopt(b(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  json got;
  int fd = -1;
  EXPECT_EQ(recv_message(b(), &got, &fd), -EAGAIN);
}

TEST_F(Pair, SendToClosedPeerIsEpipeNotSignal) {
  close_reader();
  EXPECT_EQ(send_message(a(), json{{"x", 1}}), -EPIPE);
}

TEST_F(Pair, OversizedMessagesAreRefused) {
  json huge = json::object();
  huge["blob"] = std::string(kMaxMessageBytes, 'x');
  EXPECT_EQ(send_message(a(), huge), -EMSGSIZE);

  // A peer that never sends the newline is cut off at the cap.
  std::thread writer([&] {
    const std::string chunk(1 << 16, 'x');
    std::size_t sent = 0;
    while (sent <= kMaxMessageBytes) {
      const ssize_t n = ::send(a(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
  });
  json got;
  int fd = -1;
  const int rc = recv_message(b(), &got, &fd);
  ::shutdown(b(), SHUT_RDWR);
  writer.join();
  EXPECT_EQ(rc, -EMSGSIZE);
}

TEST(ControlChannel, InvalidUtf8IsReplacedNotThrown) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  json bad = json::object();
  bad["name"] = std::string("m\xff");
  EXPECT_EQ(send_message(fds[0], bad), 0);
  json got;
  int fd = -1;
  EXPECT_EQ(recv_message(fds[1], &got, &fd), 0);
  EXPECT_EQ(got.at("name"), "m\xEF\xBF\xBD");
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(ControlChannel, DefaultSocketPath) {
  const char* old = std::getenv("UMACVLAN_SOCKET");
  const std::string saved = old != nullptr ? old : "";
  ::unsetenv("UMACVLAN_SOCKET");
  EXPECT_EQ(default_socket_path(), "/run/umacvlan/umacvlan.sock");
  ::setenv("UMACVLAN_SOCKET", "", 1);
  EXPECT_EQ(default_socket_path(), "/run/umacvlan/umacvlan.sock");
  ::setenv("UMACVLAN_SOCKET", "/tmp/x.sock", 1);
  EXPECT_EQ(default_socket_path(), "/tmp/x.sock");
  if (old != nullptr) {
    ::setenv("UMACVLAN_SOCKET", saved.c_str(), 1);
  } else {
    ::unsetenv("UMACVLAN_SOCKET");
  }
}

TEST(ControlChannel, ListenConnectAndTalk) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/a/b/ctl.sock";
  const int listener = listen_unix(path);
  ASSERT_GE(listener, 0) << std::strerror(-listener);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((dir + "/a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const int client = connect_unix(path);
  ASSERT_GE(client, 0);
  const int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server, 0);
  EXPECT_TRUE(peer_allowed(server) || ::geteuid() != 0);
  ASSERT_EQ(send_message(client, json{{"op", "show"}}), 0);
  json got;
  int fd = -1;
  ASSERT_EQ(recv_message(server, &got, &fd), 0);
  EXPECT_EQ(got.at("op"), "show");

  // A live socket is not taken over.
  EXPECT_EQ(listen_unix(path), -EADDRINUSE);
  ::close(client);
  ::close(server);
  ::close(listener);
  // Now nobody accepts on it: a stale socket is replaced.
  EXPECT_EQ(connect_unix(path), -ECONNREFUSED);
  const int again = listen_unix(path);
  EXPECT_GE(again, 0) << std::strerror(-again);
  if (again >= 0) ::close(again);
  ::unlink(path.c_str());
  ::rmdir((dir + "/a/b").c_str());
  ::rmdir((dir + "/a").c_str());
  ::rmdir(dir.c_str());
}

TEST(ControlChannel, ListenRefusesBadPaths) {
  const std::string dir = temp_dir();
  const std::string file = dir + "/regular";
  const int f = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(f, 0);
  ::close(f);
  EXPECT_EQ(listen_unix(file), -EEXIST);
  EXPECT_EQ(listen_unix(file + "/sock"), -ENOTDIR);
  EXPECT_EQ(listen_unix(""), -EINVAL);
  EXPECT_EQ(listen_unix(dir + "/" + std::string(120, 'x')), -ENAMETOOLONG);
  EXPECT_EQ(connect_unix(dir + "/missing.sock"), -ENOENT);
  ::unlink(file.c_str());
  ::rmdir(dir.c_str());
}

TEST(ControlChannel, PeerCredentials) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a peer as another user";
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  EXPECT_TRUE(peer_allowed(fds[0]));  // root
  ::close(fds[0]);
  ::close(fds[1]);

  const std::string dir = temp_dir();
  const std::string path = dir + "/ctl.sock";
  const int listener = listen_unix(path);
  ASSERT_GE(listener, 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // An unprivileged peer: nobody, no capabilities.
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const int c = connect_unix(path);
    char byte = c >= 0 ? 'y' : 'n';
    if (::write(ready[1], &byte, 1) != 1) ::_exit(3);
    ::pause();
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, 'y');
  const int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server, 0);
  EXPECT_FALSE(peer_allowed(server));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(server);
  ::close(listener);
  ::close(ready[0]);
  ::close(ready[1]);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace umacvlan::control
