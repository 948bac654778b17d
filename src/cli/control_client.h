// ControlClient: the CLI's side of the control socket: one request, one
// reply.
//
// Contract: call_daemon() connects to control::default_socket_path(). When
// nobody listens there and allow_start is true, it starts the daemon
// (`umacvlan-daemon --socket PATH --log-file LOG`, see daemon_program(); LOG as
// control::default_log_path() says; detached: its own session, stdio on
// /dev/null, not our child) and keeps trying to connect for about 5 s. It
// sends the request with a network-namespace fd as SCM_RIGHTS (netns_fd when
// given, else the calling thread's /proc/thread-self/ns/net; the caller keeps
// owning netns_fd), waits for the reply (at most kReplyTimeoutSeconds) and
// parses it strictly. Returns 0 with *out filled (the reply may still carry
// an error of the daemon's), or a negative errno with a sentence in *error
// saying what went wrong and what to do. Never prints, never exits.
// A stream (control::streaming(): capture, monitor) with stream_fd given:
// on success the connection stays open and is handed over in *stream_fd
// (the caller closes it; the daemon's lines follow, one JSON object each,
// read with no timeout); with any error it is closed.
#pragma once

#include <string>

#include "control/control_protocol.h"

namespace umacvlan::cli {

inline constexpr int kStartTimeoutMs = 5000;
inline constexpr int kReplyTimeoutSeconds = 60;

int call_daemon(const control::LinkRequest& request, control::Reply* out, bool allow_start,
                std::string* error, int netns_fd = -1, int* stream_fd = nullptr);

// The daemon's program: umacvlan-daemon in this program's own directory
// when it is there, else in ../../sbin from it (the CNI plugin installed in
// PREFIX/lib/cni finds PREFIX/sbin), else the bare name (looked up in PATH
// by execvp()).
std::string daemon_program();

}  // namespace umacvlan::cli
