#include "forkscope/results.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "forkscope/error.h"
#include "forkscope/shared/catalog.h"

namespace forkscope {
namespace {

// Insertion order keeps the file readable: identity first, phases last.
using Json = nlohmann::ordered_json;

// Bounds past which a number in a results file is corrupt rather than measured.
constexpr uint64_t kMaxCpus = 65536;
constexpr double kMaxNumber = 18446744073709551616.0;  // 2^64: every value is at most a u64 of ns
// Real files are kilobytes to a few megabytes; this stops a mistaken /dev/zero.
constexpr size_t kMaxFileBytes = size_t{1} << 30;

Json to_json(const Summary& s) {
  return {{"n", s.n}, {"min", s.min}, {"mean", s.mean}, {"p50", s.p50},
          {"p90", s.p90}, {"p99", s.p99}, {"max", s.max}};
}

Json to_json(const Phase& p) {
  Json j = {{"name", p.name},         {"path", p.path},       {"source", p.source},
            {"count", p.count},       {"calls", p.calls},     {"total_ns", p.total_ns},
            {"self_ns", p.self_ns},   {"mean_ns", p.mean_ns}, {"p50_ns", p.p50_ns},
            {"p99_ns", p.p99_ns},     {"events", p.events},   {"fn_events", p.fn_events}};
  if (!p.hist.empty()) j["hist"] = p.hist;
  return j;
}

Json to_json(const Sample& s) {
  Json spans = Json::array();
  for (const SampleSpan& p : s.spans)
    spans.push_back(
        {{"name", p.name}, {"path", p.path}, {"start_ns", p.start_ns}, {"dur_ns", p.dur_ns}, {"task", p.task}});
  return {{"seq", s.seq},
          {"parent_tid", s.parent_tid},
          {"child_pid", s.child_pid},
          {"start_ns", s.start_ns},
          {"spans", std::move(spans)}};
}

Json to_json(const std::vector<Phase>& phases) {
  Json j = Json::array();
  for (const Phase& p : phases) j.push_back(to_json(p));
  return j;
}

Json to_json(const Cell& c) {
  Json j = {{"mode", c.mode},
            {"clone_flags", c.clone_flags},
            {"heap_bytes", c.heap_bytes},
            {"iterations", c.iterations},
            {"launches", c.launches},
            {"failed", c.failed},
            {"failed_errno", c.failed_errno},
            {"time_capped", c.time_capped},
            {"seconds", c.seconds},
            {"user",
             {{"call_to_return", to_json(c.user.call_to_return)},
              {"call_to_child", to_json(c.user.call_to_child)},
              {"call_to_reaped", to_json(c.user.call_to_reaped)}}},
            {"backing",
             {{"heap_bytes_touched", c.backing.heap_bytes_touched},
              {"anon_huge_bytes", c.backing.anon_huge_bytes},
              {"vm_pte_bytes", c.backing.vm_pte_bytes},
              {"vm_rss_bytes", c.backing.vm_rss_bytes},
              {"vmas", c.backing.vmas}}},
            {"kernel",
             {{"launches", c.kernel.launches},
              {"failed", c.kernel.failed},
              {"pt_pages", c.kernel.pt_pages},
              {"faults_parent", c.kernel.faults_parent},
              {"faults_child", c.kernel.faults_child},
              {"lost", c.kernel.lost},
              {"samples_lost", c.kernel.samples_lost},
              {"first_run_missed", c.kernel.first_run_missed},
              {"execs", c.kernel.execs},
              {"exec_failed", c.kernel.exec_failed},
              {"mm_vmas", c.kernel.mm_vmas},
              {"mm_vm_bytes", c.kernel.mm_vm_bytes},
              {"mm_rss_bytes", c.kernel.mm_rss_bytes},
              {"mm_pgtables_bytes", c.kernel.mm_pgtables_bytes}}},
            {"phases", to_json(c.phases)}};
  if (!c.failed_phases.empty()) j["failed_phases"] = to_json(c.failed_phases);
  if (!c.samples.empty()) {
    Json samples = Json::array();
    for (const Sample& sample : c.samples) samples.push_back(to_json(sample));
    j["samples"] = std::move(samples);
  }
  if (!c.host.empty()) j["host"] = c.host;
  if (!c.comm.empty()) j["comm"] = c.comm;
  if (c.overhead) {
    const Overhead& o = *c.overhead;
    j["overhead"] = {{"untraced", to_json(o.untraced)},
                     {"ratio", o.ratio},
                     {"ratio_low", o.ratio_low},
                     {"ratio_high", o.ratio_high},
                     {"corrected_kernel_ns", o.corrected_kernel_ns},
                     {"corrected_error", o.corrected_error},
                     {"corrected_launch_ns", o.corrected_launch_ns},
                     {"corrected_launch_error", o.corrected_launch_error}};
  }
  return j;
}

// Reads a results document field by field.  Every complaint names the field's path
// and the source (file name or "results"), so a bad file can be fixed by hand.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  Run run(const Json& root) const {
    object(root, "");
    Run r;
    r.schema = str(root, "", "schema");
    if (r.schema != kSchema)
      fail("schema", fmt::format("is {:?}, expected {:?}; the file was written by another forkscope version",
                                 r.schema, kSchema));
    r.tool_version = str(root, "", "tool_version");
    r.started = str(root, "", "started");
    r.host = host(member(root, "", "host"), "host");
    r.backend = str(root, "", "backend");
    // Optional: files from before --depth saw everything.
    if (root.contains("depth")) {
      r.depth = str(root, "", "depth");
      if (r.depth != "syscall" && r.depth != "process" && r.depth != "full")
        fail("depth", fmt::format("is {:?}, expected \"syscall\", \"process\" or \"full\"", r.depth));
    }
    r.incomplete = boolean(root, "", "incomplete");
    // Optional: files from before it was recorded lack it.
    if (root.contains("bpf_map_bytes")) r.bpf_map_bytes = u64(root, "", "bpf_map_bytes");
    if (root.contains("calibration")) {
      const Json& c = object(member(root, "", "calibration"), "calibration");
      Calibration cal;
      cal.ns_per_event = signed_number(c, "calibration", "ns_per_event");
      cal.ns_per_launch = signed_number(c, "calibration", "ns_per_launch");
      cal.events_per_launch = number(c, "calibration", "events_per_launch");
      cal.launches = u64(c, "calibration", "launches");
      // Optional: files from before it was measured lack it.
      if (c.contains("probe_cost_ns")) {
        const Json& costs = object(member(c, "calibration", "probe_cost_ns"), "calibration.probe_cost_ns");
        for (const auto& [kind, v] : costs.items()) {
          if (kind != "fentry" && kind != "kprobe")
            fail("calibration.probe_cost_ns", fmt::format("unknown probe kind {:?}; expected fentry or kprobe", kind));
          cal.probe_cost_ns[kind] = signed_number(costs, "calibration.probe_cost_ns", kind.c_str());
        }
      }
      r.calibration = cal;
    }
    if (root.contains("trace")) {
      const Json& t = object(member(root, "", "trace"), "trace");
      TraceInfo info;
      info.target = str(t, "trace", "target");
      info.seconds = number(t, "trace", "seconds");
      const int64_t status = i64(t, "trace", "command_exit");
      if (status < -1 || status > 255) fail("trace.command_exit", "must be an exit status 0..255, or -1");
      info.command_exit = static_cast<int>(status);
      const Json& parents = array(t, "trace", "parents");
      for (size_t i = 0; i < parents.size(); ++i) {
        const std::string at = index("trace.parents", i);
        object(parents[i], at);
        TraceParent p;
        p.pid = tid(parents[i], at, "pid");
        p.comm = str(parents[i], at, "comm");
        p.launches = u64(parents[i], at, "launches");
        p.execs = u64(parents[i], at, "execs");
        info.parents.push_back(std::move(p));
      }
      r.trace = std::move(info);
    }
    const Json& available = array(root, "", "phases_available");
    for (size_t i = 0; i < available.size(); ++i)
      r.phases_available.push_back(availability(available[i], index("phases_available", i)));
    const Json& cells = array(root, "", "cells");
    for (size_t i = 0; i < cells.size(); ++i) r.cells.push_back(cell(cells[i], index("cells", i)));
    return r;
  }

 private:
  static std::string join(const std::string& at, const char* key) { return at.empty() ? key : at + "." + key; }
  static std::string index(const std::string& at, size_t i) { return fmt::format("{}[{}]", at, i); }

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    if (path.empty()) throw usage_error(fmt::format("{}: {}", source_, what));
    throw usage_error(fmt::format("{}: {}: {}", source_, path, what));
  }

  const Json& object(const Json& j, const std::string& path) const {
    if (!j.is_object()) fail(path, "expected an object");
    return j;
  }

  const Json& member(const Json& obj, const std::string& at, const char* key) const {
    const auto it = obj.find(key);
    if (it == obj.end()) fail(join(at, key), "missing");
    return *it;
  }

  const Json& array(const Json& obj, const std::string& at, const char* key) const {
    const Json& v = member(obj, at, key);
    if (!v.is_array()) fail(join(at, key), "expected an array");
    return v;
  }

  std::string str(const Json& obj, const std::string& at, const char* key) const {
    const Json& v = member(obj, at, key);
    if (!v.is_string()) fail(join(at, key), "expected a string");
    std::string s = v.get<std::string>();
    if (has_control_characters(s))
      fail(join(at, key), "contains control characters; reports print it to terminals, where they would act");
    return s;
  }

  // C0 controls, DEL, and C1 controls (U+0080..U+009F, UTF-8 C2 80..C2 9F):
  // escape sequences a crafted file could send to the terminal of whoever reads it.
  static bool has_control_characters(const std::string& s) {
    for (size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c < 0x20 || c == 0x7f) return true;
      if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9f) return true;
    }
    return false;
  }

  bool boolean(const Json& obj, const std::string& at, const char* key) const {
    const Json& v = member(obj, at, key);
    if (!v.is_boolean()) fail(join(at, key), "expected true or false");
    return v.get<bool>();
  }

  // The parser stores non-negative integers as unsigned and everything else
  // (negative, fractional, beyond 2^64) otherwise.
  uint64_t u64(const Json& v, const std::string& path) const {
    if (!v.is_number_unsigned()) fail(path, "expected a non-negative integer");
    return v.get<uint64_t>();
  }

  uint64_t u64(const Json& obj, const std::string& at, const char* key) const {
    return u64(member(obj, at, key), join(at, key));
  }

  // Thread and process ids: within pid_t (0 when not known).
  int tid(const Json& obj, const std::string& at, const char* key) const {
    const uint64_t v = u64(obj, at, key);
    if (v > static_cast<uint64_t>(std::numeric_limits<int>::max()))
      fail(join(at, key), fmt::format("{} is not a task id", v));
    return static_cast<int>(v);
  }

  // Relative times may be negative (a span before the launch's sys_enter).
  int64_t i64(const Json& obj, const std::string& at, const char* key) const {
    const Json& v = member(obj, at, key);
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}))
      fail(join(at, key), "expected an integer");
    return v.get<int64_t>();
  }

  double number(const Json& obj, const std::string& at, const char* key) const {
    const Json& v = member(obj, at, key);
    const double d = v.is_number() ? v.get<double>() : -1;
    if (!(std::isfinite(d) && d >= 0 && d <= kMaxNumber)) fail(join(at, key), "expected a non-negative number");
    return d;
  }

  // Differences and errors may be negative.
  double signed_number(const Json& obj, const std::string& at, const char* key) const {
    const Json& v = member(obj, at, key);
    if (!v.is_number() || !std::isfinite(v.get<double>()) || std::fabs(v.get<double>()) > kMaxNumber)
      fail(join(at, key), "expected a finite number");
    return v.get<double>();
  }

  Host host(const Json& j, const std::string& at) const {
    object(j, at);
    Host h;
    h.hostname = str(j, at, "hostname");
    h.kernel = str(j, at, "kernel");
    h.arch = str(j, at, "arch");
    const uint64_t cpus = u64(j, at, "cpus");
    if (cpus > kMaxCpus) fail(join(at, "cpus"), fmt::format("{} is not a plausible CPU count", cpus));
    h.cpus = static_cast<int>(cpus);
    h.thp = str(j, at, "thp");
    return h;
  }

  PhaseAvailability availability(const Json& j, const std::string& at) const {
    object(j, at);
    PhaseAvailability a;
    a.name = str(j, at, "name");
    a.source = str(j, at, "source");
    a.how = str(j, at, "how");
    a.reason = str(j, at, "reason");
    return a;
  }

  Summary summary(const Json& j, const std::string& at) const {
    object(j, at);
    Summary s;
    s.n = u64(j, at, "n");
    s.min = u64(j, at, "min");
    s.mean = number(j, at, "mean");
    s.p50 = u64(j, at, "p50");
    s.p90 = u64(j, at, "p90");
    s.p99 = u64(j, at, "p99");
    s.max = u64(j, at, "max");
    return s;
  }

  Phase phase(const Json& j, const std::string& at) const {
    object(j, at);
    Phase p;
    p.name = str(j, at, "name");
    p.path = str(j, at, "path");
    p.source = str(j, at, "source");
    p.count = u64(j, at, "count");
    p.calls = u64(j, at, "calls");
    p.total_ns = u64(j, at, "total_ns");
    p.self_ns = u64(j, at, "self_ns");
    if (p.self_ns > p.total_ns)
      fail(join(at, "self_ns"), fmt::format("{} is more than total_ns {}", p.self_ns, p.total_ns));
    p.mean_ns = number(j, at, "mean_ns");
    p.p50_ns = u64(j, at, "p50_ns");
    p.p99_ns = u64(j, at, "p99_ns");
    // Optional: files from before the observer-cost counts have neither.
    if (j.contains("events")) p.events = u64(j, at, "events");
    if (j.contains("fn_events")) p.fn_events = u64(j, at, "fn_events");
    if (j.contains("hist")) {
      const Json& hist = array(j, at, "hist");
      const std::string path = join(at, "hist");
      if (hist.size() > FS_HIST_SLOTS)
        fail(path, fmt::format("has {} slots, at most {} exist", hist.size(), FS_HIST_SLOTS));
      for (size_t i = 0; i < hist.size(); ++i) p.hist.push_back(u64(hist[i], index(path, i)));
    }
    return p;
  }

  std::vector<Phase> phase_list(const Json& obj, const std::string& at, const char* key) const {
    const Json& phases = array(obj, at, key);
    const std::string path = join(at, key);
    std::vector<Phase> out;
    for (size_t i = 0; i < phases.size(); ++i) out.push_back(phase(phases[i], index(path, i)));
    return out;
  }

  SampleSpan span(const Json& j, const std::string& at) const {
    object(j, at);
    SampleSpan s;
    s.name = str(j, at, "name");
    s.path = str(j, at, "path");
    s.start_ns = i64(j, at, "start_ns");
    s.dur_ns = u64(j, at, "dur_ns");
    s.task = str(j, at, "task");
    if (s.task != "parent" && s.task != "child")
      fail(join(at, "task"), fmt::format("is {:?}, expected \"parent\" or \"child\"", s.task));
    return s;
  }

  Sample sample(const Json& j, const std::string& at) const {
    object(j, at);
    Sample s;
    s.seq = u64(j, at, "seq");
    s.parent_tid = tid(j, at, "parent_tid");
    s.child_pid = tid(j, at, "child_pid");
    s.start_ns = u64(j, at, "start_ns");
    const Json& spans = array(j, at, "spans");
    const std::string path = join(at, "spans");
    for (size_t i = 0; i < spans.size(); ++i) s.spans.push_back(span(spans[i], index(path, i)));
    return s;
  }

  Cell cell(const Json& j, const std::string& at) const {
    object(j, at);
    Cell c;
    c.mode = str(j, at, "mode");
    c.clone_flags = str(j, at, "clone_flags");
    c.heap_bytes = u64(j, at, "heap_bytes");
    c.iterations = u64(j, at, "iterations");
    c.launches = u64(j, at, "launches");
    c.failed = u64(j, at, "failed");
    c.failed_errno = str(j, at, "failed_errno");
    c.time_capped = boolean(j, at, "time_capped");
    c.seconds = number(j, at, "seconds");

    const std::string user = join(at, "user");
    const Json& u = object(member(j, at, "user"), user);
    c.user.call_to_return = summary(member(u, user, "call_to_return"), join(user, "call_to_return"));
    c.user.call_to_child = summary(member(u, user, "call_to_child"), join(user, "call_to_child"));
    c.user.call_to_reaped = summary(member(u, user, "call_to_reaped"), join(user, "call_to_reaped"));

    const std::string backing = join(at, "backing");
    const Json& b = object(member(j, at, "backing"), backing);
    c.backing.heap_bytes_touched = u64(b, backing, "heap_bytes_touched");
    c.backing.anon_huge_bytes = u64(b, backing, "anon_huge_bytes");
    c.backing.vm_pte_bytes = u64(b, backing, "vm_pte_bytes");
    c.backing.vm_rss_bytes = u64(b, backing, "vm_rss_bytes");
    c.backing.vmas = u64(b, backing, "vmas");

    const std::string kernel = join(at, "kernel");
    const Json& k = object(member(j, at, "kernel"), kernel);
    c.kernel.launches = u64(k, kernel, "launches");
    c.kernel.failed = u64(k, kernel, "failed");
    c.kernel.pt_pages = u64(k, kernel, "pt_pages");
    c.kernel.faults_parent = u64(k, kernel, "faults_parent");
    c.kernel.faults_child = u64(k, kernel, "faults_child");
    c.kernel.lost = u64(k, kernel, "lost");
    if (k.contains("samples_lost")) c.kernel.samples_lost = u64(k, kernel, "samples_lost");
    if (k.contains("first_run_missed")) c.kernel.first_run_missed = u64(k, kernel, "first_run_missed");
    // Optional: files from before exec phases and trace lack them.
    for (auto [name, field] : {std::pair{"execs", &KernelCounts::execs}, {"exec_failed", &KernelCounts::exec_failed},
                               {"mm_vmas", &KernelCounts::mm_vmas}, {"mm_vm_bytes", &KernelCounts::mm_vm_bytes},
                               {"mm_rss_bytes", &KernelCounts::mm_rss_bytes},
                               {"mm_pgtables_bytes", &KernelCounts::mm_pgtables_bytes}}) {
      if (k.contains(name)) c.kernel.*field = u64(k, kernel, name);
    }

    c.phases = phase_list(j, at, "phases");
    // Optional: omitted when no launch failed.
    if (j.contains("failed_phases")) c.failed_phases = phase_list(j, at, "failed_phases");

    // Optional: files from before timelines and merge have neither.
    if (j.contains("samples")) {
      const Json& samples = array(j, at, "samples");
      const std::string spath = join(at, "samples");
      for (size_t i = 0; i < samples.size(); ++i) c.samples.push_back(sample(samples[i], index(spath, i)));
    }
    if (j.contains("host")) c.host = str(j, at, "host");
    if (j.contains("comm")) c.comm = str(j, at, "comm");
    if (j.contains("overhead")) {
      const std::string opath = join(at, "overhead");
      const Json& o = object(member(j, at, "overhead"), opath);
      Overhead v;
      v.untraced = summary(member(o, opath, "untraced"), join(opath, "untraced"));
      v.ratio = number(o, opath, "ratio");
      v.ratio_low = number(o, opath, "ratio_low");
      v.ratio_high = number(o, opath, "ratio_high");
      // Negative when the calibration overestimates our cost (a noisy machine): kept as measured.
      v.corrected_kernel_ns = signed_number(o, opath, "corrected_kernel_ns");
      v.corrected_error = signed_number(o, opath, "corrected_error");
      // Added after the first release: absent in older files.
      if (o.contains("corrected_launch_ns")) {
        v.corrected_launch_ns = signed_number(o, opath, "corrected_launch_ns");
        v.corrected_launch_error = signed_number(o, opath, "corrected_launch_error");
      }
      c.overhead = v;
    }
    return c;
  }

  std::string source_;
};

Run parse_run(const std::string& text, const std::string& source) {
  Json root;
  try {
    root = Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw usage_error(fmt::format("{}: not valid JSON (error at byte {}); expected a forkscope results file",
                                  source, e.byte));
  } catch (const Json::out_of_range&) {
    // The parser's other refusal: a number beyond a double, such as 1e400.
    throw usage_error(fmt::format("{}: holds a number too large to read; expected a forkscope results file", source));
  }
  return Reader(source).run(root);
}

// The temporary file write_atomically writes: closed and removed unless committed.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : path_(target + ".tmpXXXXXX"), fd_(mkstemp(path_.data())) {}
  ~TempFile() {
    if (fd_ >= 0) close(fd_);
    if (created_ && !committed_) unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // close can report a late write error (e.g. on NFS), so it is checked.
  bool close_fd() {
    const int fd = fd_;
    fd_ = -1;
    return close(fd) == 0;
  }
  void commit() { committed_ = true; }

 private:
  std::string path_;
  int fd_;
  bool created_ = fd_ >= 0;
  bool committed_ = false;
};

[[noreturn]] void read_failed(const std::string& path, const char* why) {
  throw usage_error(fmt::format("cannot read results file {}: {}; check the path", path, why));
}

[[noreturn]] void write_failed(const std::string& what, const std::string& path, int err) {
  throw Error(kExitFailure, fmt::format("cannot write {} {}: {}; check that its directory exists and is writable",
                                        what, path, std::strerror(err)));
}

}  // namespace

const Phase* Cell::phase(const std::string& name) const {
  for (const Phase& p : phases) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string to_json(const Run& run, int indent) {
  Json host = {{"hostname", run.host.hostname},
               {"kernel", run.host.kernel},
               {"arch", run.host.arch},
               {"cpus", run.host.cpus},
               {"thp", run.host.thp}};
  Json available = Json::array();
  for (const PhaseAvailability& a : run.phases_available)
    available.push_back({{"name", a.name}, {"source", a.source}, {"how", a.how}, {"reason", a.reason}});
  Json cells = Json::array();
  for (const Cell& c : run.cells) cells.push_back(to_json(c));
  Json j = {{"schema", run.schema},
                  {"tool_version", run.tool_version},
                  {"started", run.started},
                  {"host", std::move(host)},
                  {"backend", run.backend},
                  {"depth", run.depth},
                  {"incomplete", run.incomplete},
                  {"bpf_map_bytes", run.bpf_map_bytes},
                  {"phases_available", std::move(available)},
                  {"cells", std::move(cells)}};
  if (run.calibration) {
    j["calibration"] = {{"ns_per_event", run.calibration->ns_per_event},
                        {"ns_per_launch", run.calibration->ns_per_launch},
                        {"events_per_launch", run.calibration->events_per_launch},
                        {"launches", run.calibration->launches}};
    if (!run.calibration->probe_cost_ns.empty()) {
      Json costs = Json::object();
      for (const auto& [kind, ns] : run.calibration->probe_cost_ns) costs[kind] = ns;
      j["calibration"]["probe_cost_ns"] = std::move(costs);
    }
  }
  if (run.trace) {
    Json parents = Json::array();
    for (const TraceParent& p : run.trace->parents)
      parents.push_back({{"pid", p.pid}, {"comm", p.comm}, {"launches", p.launches}, {"execs", p.execs}});
    j["trace"] = {{"target", run.trace->target},
                  {"seconds", run.trace->seconds},
                  {"command_exit", run.trace->command_exit},
                  {"parents", std::move(parents)}};
  }
  // Strings come from the system (hostname, errno names); a stray invalid UTF-8
  // byte must not lose a whole run's results.
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

Run run_from_json(const std::string& text) { return parse_run(text, "results"); }

Run load_results(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) read_failed(path, std::strerror(errno));
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || text.size() > kMaxFileBytes) {
      const char* why = n < 0 ? std::strerror(errno) : "larger than any results file";
      close(fd);
      read_failed(path, why);
    }
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return parse_run(text, path);
}

std::optional<FileOwner> invoking_user() {
  const char* uid = std::getenv("SUDO_UID");
  const char* gid = std::getenv("SUDO_GID");
  if (geteuid() != 0 || uid == nullptr || gid == nullptr) return std::nullopt;
  auto id = [](const char* name, const char* text) {
    uint32_t v = 0;
    const char* end = text + std::strlen(text);
    const auto [stop, ec] = std::from_chars(text, end, v);
    // (uid_t)-1 means "leave unchanged" to chown: not an id either.
    if (ec != std::errc() || stop != end || stop == text || v == UINT32_MAX)
      throw usage_error(fmt::format("{}={:?} is not a numeric id; unset it, or run forkscope through sudo", name, text));
    return v;
  };
  return FileOwner{id("SUDO_UID", uid), id("SUDO_GID", gid)};
}

void save_results(const Run& run, const std::string& path) {
  write_atomically(path, to_json(run) + "\n", "results file");
}

void write_atomically(const std::string& path, const std::string& text, const std::string& what) {
  TempFile tmp(path);
  if (tmp.fd() < 0) write_failed(what, path, errno);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(tmp.fd(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) write_failed(what, path, errno);
    done += static_cast<size_t>(n);
  }
  // mkstemp creates the file 0600; results are meant to be shared.  fsync before
  // rename so a crash leaves either the old file or the complete new one.
  if (fchmod(tmp.fd(), 0644) != 0) write_failed(what, path, errno);
  // Under sudo the file is the invoking user's, as if they had written it: fchown
  // on the open file, never on a path a planted link could redirect.
  const std::optional<FileOwner> owner = invoking_user();
  if (owner && fchown(tmp.fd(), owner->uid, owner->gid) != 0) write_failed(what, path, errno);
  if (fsync(tmp.fd()) != 0 || !tmp.close_fd()) write_failed(what, path, errno);
  if (rename(tmp.path().c_str(), path.c_str()) != 0) write_failed(what, path, errno);
  tmp.commit();
}

}  // namespace forkscope
