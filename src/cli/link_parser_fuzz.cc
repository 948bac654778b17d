// libFuzzer target over the CLI's grammar: the input is split into the words
// after `umacvlan link` (on NUL and ASCII whitespace, empty words dropped, at
// most kMaxWords) and given to parse_link_command(). The properties checked
// are the contract of link_parser.h: no crash and no exception; the result
// holds one of its alternatives; an error has a message, ending in a newline,
// and one of ip's exit codes; help has text; a request the parser accepts is
// one the daemon's decoder takes back unchanged (to_json() then from_json()).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <variant>
#include <vector>

#include "cli/link_parser.h"
#include "control/control_protocol.h"

using namespace umacvlan;

namespace {

constexpr std::size_t kMaxWords = 64;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "link_parser_fuzz: %s\n", what);
  std::abort();
}

bool separates(std::uint8_t c) {
  return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

std::vector<std::string> split_words(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < size && words.size() < kMaxWords) {
    while (i < size && separates(data[i])) ++i;
    const std::size_t start = i;
    while (i < size && !separates(data[i])) ++i;
    if (i > start) words.emplace_back(reinterpret_cast<const char*>(data + start), i - start);
  }
  return words;
}

void check_request(const control::LinkRequest& request) {
  control::LinkRequest back;
  std::string error;
  bool decoded = false;
  try {
    decoded = control::from_json(control::to_json(request), &back, &error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "link_parser_fuzz: to_json/from_json threw: %s\n", e.what());
    std::abort();
  }
  if (!decoded) {
    std::fprintf(stderr, "link_parser_fuzz: the daemon refuses an accepted request: %s\n%s\n",
                 error.c_str(),
                 control::to_json(request)
                     .dump(-1, ' ', true, nlohmann::json::error_handler_t::replace)
                     .c_str());
    fail("request round trip refused");
  }
  if (!(back == request)) fail("request round trip changed the request");
}

void check_error(const cli::ParseError& e) {
  if (e.message.empty()) fail("a ParseError without a message");
  if (e.message.back() != '\n') fail("a ParseError message that does not end in a newline");
  if (e.exit_code != cli::kExitSyntax && e.exit_code != cli::kExitRefused &&
      e.exit_code != cli::kExitUsage) {
    fail("a ParseError with an exit code ip does not use");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::string> words = split_words(data, size);
  cli::LinkCommand command;
  try {
    command = cli::parse_link_command(words);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "link_parser_fuzz: parse_link_command threw: %s\n", e.what());
    std::abort();
  } catch (...) {
    fail("parse_link_command threw a non-standard exception");
  }
  if (command.valueless_by_exception()) fail("parse_link_command returned no alternative");
  if (const auto* request = std::get_if<control::LinkRequest>(&command)) {
    check_request(*request);
  } else if (const auto* error = std::get_if<cli::ParseError>(&command)) {
    check_error(*error);
  } else if (const auto* help = std::get_if<cli::HelpText>(&command)) {
    if (help->text.empty()) fail("help without text");
  } else {
    fail("parse_link_command returned an unknown alternative");
  }
  return 0;
}
