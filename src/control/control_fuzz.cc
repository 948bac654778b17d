// libFuzzer target over the control protocol: the input is one line as it
// arrives on the control socket. When it is JSON, it goes through both
// decoders, the daemon's (LinkRequest) and the CLI's (Reply). The properties
// checked are the contract of control_protocol.h: no decoder throws; a
// refused message leaves the output as it was and says why; an accepted
// message re-encodes with to_json() to JSON that decodes to an equal value,
// also after the trip through the wire's text (requests).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "control/control_protocol.h"

using namespace umacvlan;
using control::LinkRequest;
using control::Reply;
using nlohmann::json;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "control_fuzz: %s\n", what);
  std::abort();
}

// Calls a decoder; an exception escaping it is a finding.
template <typename T>
bool decode(const json& j, T* out, std::string* error) {
  try {
    return control::from_json(j, out, error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "control_fuzz: from_json threw: %s\n", e.what());
    std::abort();
  } catch (...) {
    fail("from_json threw a non-standard exception");
  }
}

// The text send_message() puts on the socket, read back as recv_message() does.
json over_the_wire(const json& j) {
  const std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace);
  json back = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (back.is_discarded()) fail("to_json() wrote text that is not JSON");
  return back;
}

// A value that no decoder writes, to see that a refusal leaves *out alone.
LinkRequest sentinel_request() {
  LinkRequest r;
  r.op = control::LinkOp::kDelete;
  r.name = "sentinel";
  r.mtu = 4242;
  return r;
}

void check_request(const json& j) {
  const LinkRequest sentinel = sentinel_request();
  LinkRequest request = sentinel;
  std::string error;
  if (!decode(j, &request, &error)) {
    if (!(request == sentinel)) fail("a refused request changed *out");
    if (error.empty()) fail("a refused request has no error sentence");
    return;
  }
  LinkRequest again = sentinel;
  std::string again_error;
  if (!decode(control::to_json(request), &again, &again_error)) {
    std::fprintf(stderr, "control_fuzz: re-encoded request refused: %s\n", again_error.c_str());
    fail("request round trip refused");
  }
  if (!(again == request)) fail("request round trip changed the request");
  LinkRequest wired = sentinel;
  if (!decode(over_the_wire(control::to_json(request)), &wired, &again_error)) {
    std::fprintf(stderr, "control_fuzz: request from the wire refused: %s\n", again_error.c_str());
    fail("request wire round trip refused");
  }
  if (!(wired == request)) fail("request wire round trip changed the request");
}

bool same_reply(const Reply& a, const Reply& b) {
  return a.error == b.error && a.message == b.message && a.links == b.links;
}

void check_reply(const json& j) {
  Reply sentinel;
  sentinel.error = 4242;
  sentinel.message = "sentinel";
  Reply reply = sentinel;
  std::string error;
  if (!decode(j, &reply, &error)) {
    if (!same_reply(reply, sentinel)) fail("a refused reply changed *out");
    if (error.empty()) fail("a refused reply has no error sentence");
    return;
  }
  if (reply.error < 0 || !reply.links.is_array()) fail("a decoded reply breaks its contract");
  Reply again = sentinel;
  std::string again_error;
  if (!decode(control::to_json(reply), &again, &again_error)) {
    std::fprintf(stderr, "control_fuzz: re-encoded reply refused: %s\n", again_error.c_str());
    fail("reply round trip refused");
  }
  if (!same_reply(again, reply)) fail("reply round trip changed the reply");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const json j = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  check_request(j);
  check_reply(j);
  return 0;
}
