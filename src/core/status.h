// Status: the outcome of a control-path operation.
//
// Contract: ok() when err == 0. Otherwise err is the errno the kernel's
// macvlan driver returns for the same request (EINVAL, EADDRINUSE, ...), and
// message is one sentence a user can act on. Values from <cerrno> only; the
// core never reads errno itself.
#pragma once

#include <cerrno>
#include <string>
#include <utility>

namespace umacvlan::core {

struct Status {
  int err = 0;
  std::string message;

  bool ok() const { return err == 0; }
  static Status success() { return {}; }
  static Status error(int e, std::string msg) { return Status{e, std::move(msg)}; }
};

}  // namespace umacvlan::core
