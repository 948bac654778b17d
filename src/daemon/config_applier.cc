#include "daemon/config_applier.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

namespace umacvlan::daemon {
namespace {

// The CLI program beside ours (the build, PREFIX/sbin), else from PATH.
std::string cli_program() {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string path(self, static_cast<std::size_t>(n));
    path = path.substr(0, path.find_last_of('/') + 1) + "umacvlan";
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "umacvlan";
}

}  // namespace

void ConfigApplier::start(const char* why) {
  if (file_.empty()) {
    spdlog::info("{}: no config file to apply (--config, UMACVLAN_CONFIG)", why);
    return;
  }
  if (::access(file_.c_str(), F_OK) != 0) {
    spdlog::info("{}: config file {} does not exist: nothing to apply", why, file_);
    return;
  }
  if (pid_ > 0) {
    spdlog::info("{}: an apply of {} is running; another follows it", why, file_);
    again_ = true;
    return;
  }
  const std::string exe = cli_program();
  const char* argv[] = {exe.c_str(), "--socket", socket_.c_str(), "--no-start",
                        "config",    "apply",    file_.c_str(),   nullptr};
  // Our service manager's variables are ours alone.
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view v(*e);
    if (v.starts_with("NOTIFY_SOCKET=") || v.starts_with("WATCHDOG_")) continue;
    env.push_back(*e);
  }
  env.push_back(nullptr);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    spdlog::error("{}: cannot apply {}: pipe: {}", why, file_, std::strerror(errno));
    return;
  }
  sigset_t none;
  sigemptyset(&none);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls until exec: other threads exist.
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close_range(STDERR_FILENO + 1, ~0U, 0);
    ::execvpe(argv[0], const_cast<char* const*>(argv), env.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  io::OwnedFd output(fds[0]);
  if (pid < 0) {
    spdlog::error("{}: cannot apply {}: fork: {}", why, file_, std::strerror(errno));
    return;
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    // Without a pidfd we cannot see it end without waiting: reap it in
    // the next ticks instead.
    spdlog::warn("{}: pidfd_open: {}", why, std::strerror(errno));
  }
  ::fcntl(output.get(), F_SETFL, O_NONBLOCK);
  spdlog::info("{}: applying {} ({} config apply, pid {})", why, file_, exe, pid);
  pid_ = pid;
  output_ = std::move(output);
  pidfd_.reset(pidfd);
  watch_(output_.get(), output_tag_);
  if (pidfd_.valid()) watch_(pidfd_.get(), exit_tag_);
}

void ConfigApplier::on_output() {
  if (!output_.valid()) return;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(output_.get(), buf, sizeof buf);
    if (n > 0) {
      partial_.append(buf, static_cast<std::size_t>(n));
      log_lines(false);
      continue;
    }
    if (n == 0) {
      log_lines(true);
      output_.reset();  // closing it takes it out of the epoll set
    }
    return;
  }
}

void ConfigApplier::on_exit() {
  if (pid_ <= 0) return;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return;
  on_output();
  log_lines(true);
  output_.reset();
  pidfd_.reset();
  pid_ = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    spdlog::info("config apply of {}: done", file_);
  } else if (WIFEXITED(status)) {
    spdlog::warn("config apply of {}: exit status {}", file_, WEXITSTATUS(status));
  } else {
    spdlog::warn("config apply of {}: killed by signal {}", file_, WTERMSIG(status));
  }
  if (again_) {
    again_ = false;
    start("reload");
  }
}

void ConfigApplier::log_lines(bool flush) {
  std::size_t start = 0;
  for (std::size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    spdlog::info("config: {}", partial_.substr(start, nl - start));
  }
  partial_.erase(0, start);
  if (flush && !partial_.empty()) {
    spdlog::info("config: {}", partial_);
    partial_.clear();
  }
}

}  // namespace umacvlan::daemon
