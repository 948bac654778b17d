// Test helper for the stream consumers (capture.h, monitor.h): a LineSource
// over fixed lines that counts what it handed out.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "cli/capture.h"  // LineSource

namespace umacvlan::cli {

struct Lines {
  std::vector<std::string> lines;
  std::size_t next = 0;
  LineSource source() {
    return [this](std::string* line) {
      if (next >= lines.size()) return false;
      *line = lines[next++];
      return true;
    };
  }
};

}  // namespace umacvlan::cli
