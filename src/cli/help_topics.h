// HelpTopics: the text of `umacvlan help [TOPIC]`, one source for the
// command line and the man page umacvlan(8) (help2man reads `umacvlan
// --help`, and the build turns `umacvlan help --man` into the man page's
// extra sections).
//
// Contract: pure text, no I/O. topic_text() returns nullopt for a topic it
// does not know; topic_names() lists them in the order the man page shows
// them. Each topic is plain text, at most 80 columns wide.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace umacvlan::cli {

std::vector<std::string_view> topic_names();
std::optional<std::string> topic_text(std::string_view topic);
// The list of topics with a one-line summary each.
std::string topics_summary();
// Every topic as help2man --include sections ("[MODES]" ... ).
std::string topics_for_man();

}  // namespace umacvlan::cli
