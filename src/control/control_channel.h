// ControlChannel: how control messages travel over a connected AF_UNIX
// SOCK_STREAM socket, plus the socket set-up both ends need.
//
// Contract: one message is one line: the JSON text without indentation
// (nlohmann::json::dump()), then '\n'. JSON never holds a raw newline, so the
// line is the frame. A file descriptor may ride along as SCM_RIGHTS with the
// message's first bytes (the CLI passes its network namespace that way).
//
// send_message() writes the whole line (looping over short writes, never
// raising SIGPIPE); the caller keeps owning pass_fd. recv_message() reads
// exactly one line and nothing past it, so several messages can share a
// connection; the descriptor it hands back in *passed_fd (or -1) belongs to
// the caller; any further descriptors are closed. On every failure *passed_fd
// is -1 and nothing leaks. Both return 0 or a negative errno: -EPROTO for a
// line that is not JSON, -EMSGSIZE past kMaxMessageBytes, -ENODATA when the
// peer closed cleanly before a message began, -ECONNRESET when it closed in
// the middle of one. Blocking sockets block; timeouts are the caller's
// (SO_RCVTIMEO / SO_SNDTIMEO surface as -EAGAIN).
//
// listen_unix()/connect_unix() return a CLOEXEC socket or a negative errno.
// peer_allowed() says whether the connected peer may drive the daemon.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

namespace umacvlan::control {

inline constexpr std::size_t kMaxMessageBytes = 16u << 20;  // 16 MiB, newline included
inline constexpr const char* kDefaultSocketPath = "/run/umacvlan/umacvlan.sock";

// $UMACVLAN_SOCKET when set and not empty, else kDefaultSocketPath.
std::string default_socket_path();
// Where the daemon of a socket keeps its state and its log when started by
// the CLI: /var/lib/umacvlan/state.json and /var/log/umacvlan/umacvlan.log
// for the default socket; beside any other socket (NAME.sock ->
// NAME.state.json, NAME.log), so that daemons on different sockets never
// share them.
std::string default_state_path(const std::string& socket_path);
std::string default_log_path(const std::string& socket_path);

int send_message(int fd, const nlohmann::json& message, int pass_fd = -1);
int recv_message(int fd, nlohmann::json* out, int* passed_fd);

// Creates the parent directory (mode 0700) if missing, removes a stale
// socket file (one nobody accepts on; a live one gives -EADDRINUSE; a path
// that is not a socket gives -EEXIST), binds, makes the socket 0600 and
// listens.
int listen_unix(const std::string& path);
int connect_unix(const std::string& path);

// True when the peer (SO_PEERCRED) is uid 0, or is a process of our own user
// namespace whose effective capabilities (/proc/PID/status CapEff) include
// CAP_NET_ADMIN. A peer in another user namespace must be uid 0 as seen from
// ours: its CapEff there says nothing about rights over our devices.
bool peer_allowed(int fd);

}  // namespace umacvlan::control
