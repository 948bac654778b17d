// Capture: the CLI's side of `umacvlan capture`, what one device or one port
// sends and receives, as tcpdump shows it, with the engine's decision for
// each frame in words.
//
// Synopsis (the words after "capture"; see capture_usage()):
//   capture { dev NAME | port LOWER } [ -w FILE ] [ -c COUNT ] [ FILTER... ]
//     FILE   := a pcap file to write ("-": standard output)
//     COUNT  := stop after COUNT frames that matched FILTER (a positive integer)
//     FILTER := a pcap-filter(7) expression: the remaining words, joined by spaces
//   "dev"/"port", -w and -c come in any order before FILTER. Once NAME is
//   known, a further "port" starts FILTER (`capture dev mv0 port 53`).
//
// The stream (the daemon's, after its successful reply; one JSON object a
// line, read through a LineSource: this file never touches a socket):
//   {"type":"frame","time":NS,"from":{"kind":"lower"|"device","name":N},
//    "len":LEN,"data":HEX,"to":[{"name","reason","queued"}...],"more":N,
//    "host":BOOL,"wire":BOOL,"drop":REASON[,"dir":"in"|"out"]}
//   {"type":"stats","overflow":N,"lost":N}   cumulative, about every second
//   {"type":"end","reason":SENTENCE}         the last line
//   Other "type"s are ignored. A line that is not JSON, lacks a required key
//   (frame: time, from, len, data; stats: overflow, lost; end: reason), has
//   a key of the wrong type, bad hex or more bytes than "len" is skipped and
//   counted as malformed: never an exception, never a crash.
//
// Contract
// - parse_capture_args() checks the whole command, the filter included (it
//   is compiled with libpcap for DLT_EN10MB), and changes *out only when it
//   succeeds. Errors are ip-shaped sentences ending in '\n'.
// - CaptureSession owns the compiled filter and the pcap writer (libpcap,
//   snaplen kSnaplen, microsecond timestamps from "time", caplen = the bytes
//   of "data", len = "len"); it writes frames to the -w file, or one text
//   line per frame (describe_frame() + describe_decision()), or with json
//   the frame's record as one compact JSON line, to the ostream it was given.
//   Every frame is flushed as it is written: the output is read live
//   through pipes (`-w - | tcpdump -r -`).
// - describe_frame() and the other format functions are pure and never read
//   past the bytes they are given, whatever those bytes are.
// - run_capture_stream() is the command's whole life after the daemon's
//   reply: open, consume lines until COUNT, the end record, the end of the
//   stream or *stop, then the summary on err. Returns 0, or 1 when the -w
//   file cannot be opened or written (an ip-style sentence on err).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace umacvlan::cli {

// One line of a stream, without its newline; false at the end of the stream.
using LineSource = std::function<bool(std::string* line)>;

inline constexpr std::uint32_t kSnaplen = 262144;

struct CaptureArgs {
  enum Kind { kDev, kPort } kind = kDev;
  std::string name;
  std::string write_file;   // -w; "-" = the output stream; empty: text lines
  std::uint64_t count = 0;  // -c; 0 = unlimited
  std::string filter;       // BPF expression; empty: every frame
  bool json = false;        // the global -j (set by main): frames as JSON lines
};

// words: the words after "capture". false with an ip-style message in *error
// (ending in '\n'); *out is then unchanged.
bool parse_capture_args(const std::vector<std::string>& words, CaptureArgs* out,
                        std::string* error);
std::string capture_usage();

// One place a frame went, as the daemon lists it.
struct CaptureTarget {
  std::string name;     // a device
  std::string reason;   // "unicast", "source_copy", "reflect", "flood" (core::Reason)
  bool queued = false;  // through the broadcast queue
};

// A "frame" record of the stream.
struct FrameRecord {
  std::uint64_t time_ns = 0;  // since the Unix epoch
  std::string from_kind;      // "lower" or "device"
  std::string from_name;
  std::uint32_t len = 0;           // the frame's length on the wire
  std::vector<std::uint8_t> data;  // its first bytes (caplen = data.size() <= len)
  std::vector<CaptureTarget> to;
  std::uint64_t more = 0;     // targets not listed
  bool host = false;          // the lower's own stack got it
  bool wire = false;          // it went out the lower
  std::string drop = "none";  // core::to_string(DropReason)
  std::string dir;            // `capture dev`: "in" or "out"; otherwise empty
};

// false when j is not a well-formed frame record (see the contract); *out is
// then unspecified.
bool parse_frame_record(const nlohmann::ordered_json& j, FrameRecord* out);
// Hex digits (either case) to bytes; false for an odd length or a non-digit.
bool decode_hex(std::string_view hex, std::vector<std::uint8_t>* out);

enum class TimeZone { kLocal, kUtc };

// "HH:MM:SS.uuuuuu" of a time in nanoseconds since the Unix epoch.
std::string format_time(std::uint64_t time_ns, TimeZone tz);
// tcpdump-like: "SRC > DST [vlan N...] PROTOCOL DETAILS, length LEN", where
// data are the captured bytes and len the frame's length on the wire.
std::string describe_frame(std::span<const std::uint8_t> data, std::uint32_t len);
// What became of the frame: "to mv1 (flood), mv2 (flood, queued), +3 more,
// stack, wire", "to nobody", "dropped (spoofed: ...)", or both joined by
// "; ".
std::string describe_decision(const FrameRecord& frame);
// A drop reason (core::to_string(DropReason)) in a few words; the reason
// itself for one this build does not know.
std::string drop_phrase(std::string_view reason);
// The whole text line, without its newline:
//   "TIME out mv0 DESCRIPTION: DECISION"          (dir out)
//   "TIME in mv0 from eth0 DESCRIPTION: DECISION" (dir in; watched = "mv0")
//   "TIME from eth0 DESCRIPTION: DECISION"        (a port capture)
std::string format_frame_line(const FrameRecord& frame, std::string_view watched, TimeZone tz);

struct CaptureSummary {
  std::uint64_t captured = 0;      // frames written or printed
  std::uint64_t filtered_out = 0;  // frames FILTER did not match
  std::uint64_t malformed = 0;     // lines skipped (see the contract)
  std::uint64_t overflow = 0;      // dropped by the daemon: the capture queue was full
  std::uint64_t lost = 0;          // dropped by the daemon: this reader was too slow
  std::string end_reason;          // the end record's sentence, when one came
  bool closed = false;             // the stream ended without an end record (nor COUNT, nor stop)
};

// "N packets captured", the daemon's two kinds of drops (always), then the
// frames FILTER did not match, the malformed lines, the end, when there are
// any; every line ends in '\n'.
std::string format_capture_summary(const CaptureSummary& s);
// tcpdump's first line: "listening on dev mv0, link-type EN10MB (Ethernet),
// snapshot length 262144 bytes\n".
std::string capture_banner(const CaptureArgs& args);

class CaptureSession {
 public:
  // out receives the text lines, the JSON lines, or the pcap file of "-w -".
  CaptureSession(CaptureArgs args, std::ostream& out, TimeZone tz = TimeZone::kLocal);
  ~CaptureSession();
  CaptureSession(const CaptureSession&) = delete;
  CaptureSession& operator=(const CaptureSession&) = delete;

  // Compiles the filter and opens the -w file (and writes its header). false
  // with an ip-style sentence in *error.
  bool open(std::string* error);
  // One line of the stream. false when the capture is over: COUNT frames
  // done, the end record, or a write error (error() says which).
  bool consume(const std::string& line);
  // Flushes and closes the -w file; false with a sentence in *error when
  // that fails. consume() must not be called after it.
  bool close(std::string* error);

  CaptureSummary& summary() { return summary_; }
  const CaptureSummary& summary() const { return summary_; }
  // The write error that ended the capture, or empty.
  const std::string& error() const { return error_; }

 private:
  bool emit(const FrameRecord& frame, const nlohmann::ordered_json& record);

  struct Pcap;
  CaptureArgs args_;
  std::ostream& out_;
  TimeZone tz_;
  std::unique_ptr<Pcap> pcap_;
  CaptureSummary summary_;
  std::string error_;
  bool done_ = false;
};

// `umacvlan capture ...` after the daemon's successful reply: the banner,
// the frames, the summary on err. stop (may be null) is read between lines.
// Returns 0, or 1 after a write error.
int run_capture_stream(const CaptureArgs& args, const LineSource& source, std::ostream& out,
                       std::ostream& err, const std::atomic<bool>* stop,
                       TimeZone tz = TimeZone::kLocal);

}  // namespace umacvlan::cli
