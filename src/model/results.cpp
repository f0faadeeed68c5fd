// The results schema, written once: one describe() per struct lists its fields in
// file order with what each may hold, and drives both the writer and the validating
// reader (equality is the structs' defaulted operator==).  Past 500 lines because
// the description, the two visitors and the parse guard change together.
#include "forkscope/results.h"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "forkscope/catalog.h"
#include "forkscope/error.h"
#include "forkscope/shared/catalog.h"

namespace forkscope {
namespace {

// Insertion order keeps the file readable: identity first, phases last.
using Json = nlohmann::ordered_json;

// Bounds past which a number in a results file is corrupt rather than measured.
constexpr int64_t kMaxCpus = 65536;
constexpr double kMaxNumber = 18446744073709551616.0;  // 2^64: every value is at most a u64 of ns

// How a field appears in the file.
enum class Presence {
  kRequired,  // always written, must be there
  kOptional,  // always written; files from before it existed lack it (it reads as the default)
  kIfSet,     // written only when set (non-empty, present); may be absent
};

// What a field may hold beyond its C++ type.
struct Spec {
  Presence presence = Presence::kRequired;
  bool negative = false;                  // numbers: may be negative (differences, errors)
  size_t max = 0;                         // strings: bytes (0: kMaxStringBytes); arrays and maps: entries (required)
  const char* range = "is out of range";  // integers: what a value past their type is
};
constexpr Spec kOptional{Presence::kOptional};
constexpr Spec kIfSet{Presence::kIfSet};
constexpr Spec kSigned{Presence::kRequired, true};
constexpr Spec list(size_t max, Presence presence = Presence::kRequired) { return {presence, false, max}; }

template <class S, class T>
concept Of = std::same_as<std::remove_const_t<S>, T>;

// A path holds at most kMaxPathParts names and ends in its own.
bool path_ends_in(const std::string& path, const std::string& name) {
  const size_t last = path.rfind(';');
  return path.compare(last == std::string::npos ? 0 : last + 1, std::string::npos, name) == 0;
}
size_t path_parts(const std::string& path) {
  return 1 + static_cast<size_t>(std::count(path.begin(), path.end(), ';'));
}

template <class V, class S>
void describe_path(V& v, S& s) {
  v.require("path", path_parts(s.path) <= kMaxPathParts, [&] {
    return fmt::format("has {} parts; a phase path has at most {}", path_parts(s.path), kMaxPathParts);
  });
  v.require("path", path_ends_in(s.path, s.name),
            [&] { return fmt::format("{:?} does not end in the phase's name {:?}", s.path, s.name); });
}

template <class V, Of<Summary> S>
void describe(V& v, S& s) {
  v("n", s.n);
  v("min", s.min);
  v("mean", s.mean);
  v("p50", s.p50);
  v("p90", s.p90);
  v("p99", s.p99);
  v("max", s.max);
}

template <class V, Of<Host> S>
void describe(V& v, S& s) {
  v("hostname", s.hostname);
  v("kernel", s.kernel);
  v("arch", s.arch);
  constexpr Spec cpus{.range = "is not a plausible CPU count"};
  v("cpus", s.cpus, cpus);
  v.require("cpus", s.cpus >= 0 && s.cpus <= kMaxCpus, [&] { return fmt::format("{} {}", s.cpus, cpus.range); });
  v("thp", s.thp);
}

template <class V, Of<PhaseAvailability> S>
void describe(V& v, S& s) {
  v("name", s.name);
  v("source", s.source);
  v("how", s.how);
  v("reason", s.reason);
}

template <class V, Of<Phase> S>
void describe(V& v, S& s) {
  v("name", s.name);
  v("path", s.path);
  describe_path(v, s);
  v("source", s.source);
  v("count", s.count);
  v("calls", s.calls);
  v("total_ns", s.total_ns);
  v("self_ns", s.self_ns);
  v.require("self_ns", s.self_ns <= s.total_ns,
            [&] { return fmt::format("{} is more than total_ns {}", s.self_ns, s.total_ns); });
  v("mean_ns", s.mean_ns);
  v("p50_ns", s.p50_ns);
  v("p99_ns", s.p99_ns);
  // Optional: files from before the observer-cost counts have neither.
  v("events", s.events, kOptional);
  v("fn_events", s.fn_events, kOptional);
  v("hist", s.hist, list(FS_HIST_SLOTS, Presence::kIfSet));
}

// Thread and process ids: within pid_t (0 when not known).
template <class V>
void task_id(V& v, const char* key, auto& id) {
  constexpr Spec spec{.range = "is not a task id"};
  v(key, id, spec);
  v.require(key, id >= 0, [&] { return fmt::format("{} {}", id, spec.range); });
}

template <class V, Of<SampleSpan> S>
void describe(V& v, S& s) {
  v("name", s.name);
  v("path", s.path);
  describe_path(v, s);
  // Relative times may be negative (a span before the launch's sys_enter).
  v("start_ns", s.start_ns);
  v("dur_ns", s.dur_ns);
  v("task", s.task);
  v.require("task", s.task == "parent" || s.task == "child",
            [&] { return fmt::format("is {:?}, expected \"parent\" or \"child\"", s.task); });
}

template <class V, Of<Sample> S>
void describe(V& v, S& s) {
  v("seq", s.seq);
  task_id(v, "parent_tid", s.parent_tid);
  task_id(v, "child_pid", s.child_pid);
  v("start_ns", s.start_ns);
  v("spans", s.spans, list(kMaxSpans));
}

template <class V, Of<Backing> S>
void describe(V& v, S& s) {
  v("heap_bytes_touched", s.heap_bytes_touched);
  v("anon_huge_bytes", s.anon_huge_bytes);
  v("vm_pte_bytes", s.vm_pte_bytes);
  v("vm_rss_bytes", s.vm_rss_bytes);
  v("vmas", s.vmas);
  // Files from before --thp pte lack it.
  v("large_folio_bytes", s.large_folio_bytes, kOptional);
}

template <class V, Of<KernelCounts> S>
void describe(V& v, S& s) {
  v("launches", s.launches);
  v("failed", s.failed);
  v("pt_pages", s.pt_pages);
  v("faults_parent", s.faults_parent);
  v("faults_child", s.faults_child);
  v("lost", s.lost);
  // Optional: files from before sampling, exec phases and trace lack them.
  v("samples_lost", s.samples_lost, kOptional);
  v("first_run_missed", s.first_run_missed, kOptional);
  v("execs", s.execs, kOptional);
  v("exec_failed", s.exec_failed, kOptional);
  v("mm_vmas", s.mm_vmas, kOptional);
  v("mm_vm_bytes", s.mm_vm_bytes, kOptional);
  v("mm_rss_bytes", s.mm_rss_bytes, kOptional);
  v("mm_pgtables_bytes", s.mm_pgtables_bytes, kOptional);
  // trace: files from before huge pages were read lack them.
  v("mm_anon_huge_bytes", s.mm_anon_huge_bytes, kOptional);
  v("mm_anon_huge_launches", s.mm_anon_huge_launches, kOptional);
  v.require("mm_anon_huge_launches", s.mm_anon_huge_launches <= s.launches, [&] {
    return fmt::format("{} is more than launches {}; only launches are valued", s.mm_anon_huge_launches, s.launches);
  });
}

template <class V, Of<UserSpans> S>
void describe(V& v, S& s) {
  v("call_to_return", s.call_to_return);
  v("call_to_child", s.call_to_child);
  v("call_to_reaped", s.call_to_reaped);
}

template <class V, Of<Overhead> S>
void describe(V& v, S& s) {
  v("untraced", s.untraced);
  v("ratio", s.ratio);
  v("ratio_low", s.ratio_low);
  v("ratio_high", s.ratio_high);
  // Negative when the calibration overestimates our cost (a noisy machine): kept as measured.
  v("corrected_kernel_ns", s.corrected_kernel_ns, kSigned);
  v("corrected_error", s.corrected_error, kSigned);
  // Added after the first release: absent in older files.
  v("corrected_launch_ns", s.corrected_launch_ns, Spec{Presence::kOptional, true});
  v("corrected_launch_error", s.corrected_launch_error, Spec{Presence::kOptional, true});
}

template <class V, Of<Calibration> S>
void describe(V& v, S& s) {
  v("ns_per_event", s.ns_per_event, kSigned);
  v("ns_per_launch", s.ns_per_launch, kSigned);
  v("events_per_launch", s.events_per_launch);
  v("launches", s.launches);
  // Omitted when not measured; files from before it was measured lack it.
  v("probe_cost_ns", s.probe_cost_ns, Spec{Presence::kIfSet, true, 8});
  // Not a structured binding: clang 14 (the fuzz lane's) cannot capture one.
  for (const auto& entry : s.probe_cost_ns) {
    const std::string& kind = entry.first;
    v.require("probe_cost_ns", kind == "fentry" || kind == "kprobe",
              [&] { return fmt::format("unknown probe kind {:?}; expected fentry or kprobe", kind); });
  }
}

template <class V, Of<Mapping> S>
void describe(V& v, S& s) {
  v("name", s.name);
  v("kind", s.kind);
  static const std::set<std::string> kinds = {"file", "heap", "stack", "anon", "special", "other"};
  v.require("kind", kinds.contains(s.kind), [&] { return fmt::format("unknown mapping kind {:?}", s.kind); });
  v("perms", s.perms);
  v("vmas", s.vmas);
  v("bytes", s.bytes);
  v("rss_bytes", s.rss_bytes);
  v("page_table_bytes", s.page_table_bytes);
  v("launches", s.launches);
  v("calls", s.calls);
  v("vma_setup_ns", s.vma_setup_ns);
  v("copy_page_range_ns", s.copy_page_range_ns);
}

template <class V, Of<ExecProgram> S>
void describe(V& v, S& s) {
  v("program", s.program);
  v("execs", s.execs);
}

template <class V, Of<Cell> S>
void describe(V& v, S& s) {
  v("mode", s.mode);
  v("clone_flags", s.clone_flags);
  v("heap_bytes", s.heap_bytes);
  // Files from before --vmas lists lack it (their cells had no extra VMAs or did
  // not say): it reads as 0.
  v("vmas", s.vmas, kOptional);
  // Written only when not the default (touched VMAs, small pages).
  v("vma_touch", s.vma_touch, kIfSet);
  v.require("vma_touch", s.vma_touch.empty() || s.vma_touch == "none",
            [&] { return fmt::format("is {:?}; expected \"none\" or no field (touched)", s.vma_touch); });
  v("thp", s.thp, kIfSet);
  v.require("thp", s.thp.empty() || s.thp == "pmd" || s.thp == "pte",
            [&] { return fmt::format("is {:?}; expected \"pmd\", \"pte\" or no field (small pages)", s.thp); });
  v("iterations", s.iterations);
  v("launches", s.launches);
  v("failed", s.failed);
  v("failed_errno", s.failed_errno);
  v("time_capped", s.time_capped);
  v("seconds", s.seconds);
  v("user", s.user);
  v("backing", s.backing);
  v("kernel", s.kernel);
  v("phases", s.phases, list(kMaxPhases));
  // Omitted when no launch failed.
  v("failed_phases", s.failed_phases, list(kMaxPhases, Presence::kIfSet));
  // Files from before timelines and merge have neither.
  v("samples", s.samples, list(kMaxSamples, Presence::kIfSet));
  v("host", s.host, kIfSet);
  v("comm", s.comm, kIfSet);
  // trace --group-by exe, pid or cgroup; execs by program (issue 18): omitted when none.
  v("group", s.group, kIfSet);
  v("exec_programs", s.exec_programs, list(kMaxExecPrograms, Presence::kIfSet));
  v("exec_programs_other", s.exec_programs_other, kIfSet);
  v("overhead", s.overhead, kIfSet);
  // Per-mapping attribution (issue 14): omitted when the cell copied no VMAs.
  v("mapping_method", s.mapping_method, kIfSet);
  v.require("mapping_method", s.mapping_method.empty() || s.mapping_method == "order" || s.mapping_method == "exact",
            [&] { return fmt::format("unknown method {:?}; expected \"order\" or \"exact\"", s.mapping_method); });
  v("mapping_unattributed", s.mapping_unattributed, kIfSet);
  v("mappings", s.mappings, list(kMaxMappings, Presence::kIfSet));
}

template <class V, Of<TraceParent> S>
void describe(V& v, S& s) {
  task_id(v, "pid", s.pid);
  v("comm", s.comm);
  v("exec_comm", s.exec_comm, kIfSet);
  v("launches", s.launches);
  v("execs", s.execs);
}

template <class V, Of<TraceInfo> S>
void describe(V& v, S& s) {
  v("target", s.target, Spec{Presence::kRequired, false, kMaxCommandBytes});
  v("seconds", s.seconds);
  v("command_exit", s.command_exit);
  v.require("command_exit", s.command_exit >= -1 && s.command_exit <= 255,
            [] { return std::string("must be an exit status 0..255, or -1"); });
  // Files from before --group-by grouped by command.
  v("group_by", s.group_by, kOptional);
  v.require("group_by", s.group_by == "comm" || s.group_by == "exe" || s.group_by == "pid" || s.group_by == "cgroup",
            [&] { return fmt::format("is {:?}, expected \"comm\", \"exe\", \"pid\" or \"cgroup\"", s.group_by); });
  v("parents", s.parents, list(kMaxParents));
}

template <class V, Of<Run> S>
void describe(V& v, S& s) {
  v("schema", s.schema);
  v.require("schema", s.schema == kSchema, [&] {
    return fmt::format("is {:?}, expected {:?}; the file was written by another forkscope version", s.schema, kSchema);
  });
  v("tool_version", s.tool_version);
  v("started", s.started);
  v("host", s.host);
  v("backend", s.backend);
  // Optional: files from before --depth saw everything ("full").
  v("depth", s.depth, kOptional);
  v.require("depth", s.depth == "syscall" || s.depth == "process" || s.depth == "full",
            [&] { return fmt::format("is {:?}, expected \"syscall\", \"process\" or \"full\"", s.depth); });
  v("incomplete", s.incomplete);
  // Optional: files from before it was recorded lack it.
  v("bpf_map_bytes", s.bpf_map_bytes, kOptional);
  v("phases_available", s.phases_available, list(kMaxPhases));
  v("cells", s.cells, list(kMaxCells));
  v("calibration", s.calibration, kIfSet);  // run --overhead, or function probes
  v("trace", s.trace, kIfSet);              // forkscope trace
}

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};
template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <class T>
bool is_set(const T& value) {
  if constexpr (IsOptional<T>::value) {
    return value.has_value();
  } else if constexpr (requires { value.empty(); }) {
    return !value.empty();
  } else if constexpr (std::is_arithmetic_v<T>) {
    return value != 0;
  } else {
    return true;
  }
}

class Writer {
 public:
  template <class T>
  void operator()(const char* key, const T& value, Spec spec = {}) {
    if (spec.presence == Presence::kIfSet && !is_set(value)) return;
    out_[key] = write(value);
  }
  template <class F>
  void require(const char*, bool, F&&) const {}

  template <class T>
  static Json write(const T& value) {
    if constexpr (IsOptional<T>::value) {
      return write(*value);
    } else if constexpr (IsVector<T>::value) {
      Json a = Json::array();
      for (const auto& e : value) a.push_back(write(e));
      return a;
    } else if constexpr (std::is_same_v<T, std::map<std::string, double>>) {
      Json o = Json::object();
      for (const auto& [k, v] : value) o[k] = v;
      return o;
    } else if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string>) {
      return Json(value);
    } else {
      Writer w;
      describe(w, value);
      return std::move(w.out_);
    }
  }

 private:
  Json out_ = Json::object();
};

std::string join(const std::string& at, const std::string& key) { return at.empty() ? key : at + "." + key; }
std::string index(const std::string& at, size_t i) { return fmt::format("{}[{}]", at, i); }

// Reads a results document field by field.  Every complaint names the field's path
// and the source (file name or "results"), so a bad file can be fixed by hand.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    if (path.empty()) throw usage_error(fmt::format("{}: {}", source_, what));
    throw usage_error(fmt::format("{}: {}: {}", source_, path, what));
  }

  // The fields of one object, as describe() lists them.
  class Fields {
   public:
    Fields(const Reader& r, const Json& obj, std::string at) : r_(r), obj_(obj), at_(std::move(at)) {}
    template <class T>
    void operator()(const char* key, T& value, Spec spec = {}) {
      const auto it = obj_.find(key);
      if (it == obj_.end()) {
        if (spec.presence == Presence::kRequired) r_.fail(join(at_, key), "missing");
        return;
      }
      r_.read(*it, join(at_, key), value, spec);
    }
    template <class F>
    void require(const char* key, bool ok, F&& message) const {
      if (!ok) r_.fail(join(at_, key), message());
    }

   private:
    const Reader& r_;
    const Json& obj_;
    std::string at_;
  };

  template <class T>
  void read(const Json& v, const std::string& path, T& out, Spec spec) const {
    if constexpr (IsOptional<T>::value) {
      typename T::value_type value{};
      read(v, path, value, spec);
      out = std::move(value);
    } else if constexpr (IsVector<T>::value) {
      if (!v.is_array()) fail(path, "expected an array");
      if (spec.max == 0) throw std::logic_error(path + ": a list without a limit");
      if (v.size() > spec.max)
        fail(path, fmt::format("has {} entries; a results file holds at most {}", v.size(), spec.max));
      out.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) read(v[i], index(path, i), out[i], Spec{});
    } else if constexpr (std::is_same_v<T, std::map<std::string, double>>) {
      if (!v.is_object()) fail(path, "expected an object");
      if (v.size() > spec.max)
        fail(path, fmt::format("has {} entries; a results file holds at most {}", v.size(), spec.max));
      for (const auto& [key, value] : v.items())
        read(value, join(path, key), out[key], Spec{Presence::kRequired, spec.negative});
    } else if constexpr (std::is_same_v<T, std::string>) {
      out = string(v, path, spec.max == 0 ? kMaxStringBytes : spec.max);
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) fail(path, "expected true or false");
      out = v.get<bool>();
    } else if constexpr (std::is_same_v<T, uint64_t>) {
      // The parser stores non-negative integers as unsigned and everything else
      // (negative, fractional, beyond 2^64) otherwise.
      if (!v.is_number_unsigned()) fail(path, "expected a non-negative integer");
      out = v.get<uint64_t>();
    } else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, int>) {
      if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}))
        fail(path, "expected an integer");
      const int64_t i = v.get<int64_t>();
      if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max())
        fail(path, fmt::format("{} {}", i, spec.range));
      out = static_cast<T>(i);
    } else if constexpr (std::is_same_v<T, double>) {
      const double d = v.is_number() ? v.get<double>() : std::nan("");
      if (spec.negative) {
        if (!std::isfinite(d) || std::fabs(d) > kMaxNumber) fail(path, "expected a finite number");
      } else if (!(std::isfinite(d) && d >= 0 && d <= kMaxNumber)) {
        fail(path, "expected a non-negative number");
      }
      out = d;
    } else {
      if (!v.is_object()) fail(path, "expected an object");
      Fields fields(*this, v, path);
      describe(fields, out);
    }
  }

  // What no single field says: each cell, phase and key once, known phase names.
  void check(const Run& r) const {
    std::set<std::string> known_names;
    for (const CatalogEntry& e : catalog()) {
      if (!is_user_slot(e.id)) known_names.insert(e.name);
    }
    std::map<std::string, size_t> available;
    for (size_t i = 0; i < r.phases_available.size(); ++i) {
      const auto [it, fresh] = available.emplace(r.phases_available[i].name, i);
      if (!fresh)
        fail(join(index("phases_available", i), "name"),
             fmt::format("{:?} is already phases_available[{}]; a phase is listed once", it->first, it->second));
      known_names.insert(it->first);
    }
    std::map<std::tuple<std::string, std::string, std::string, std::string, uint64_t, uint64_t>, size_t> cells;
    for (size_t i = 0; i < r.cells.size(); ++i) {
      const Cell& c = r.cells[i];
      const std::string at = index("cells", i);
      const auto [it, fresh] = cells.emplace(std::tuple{c.host, c.comm, c.group, c.mode, c.heap_bytes, c.vmas}, i);
      if (!fresh)
        fail(at,
             fmt::format(
                 "the same cell (mode, heap_bytes, vmas, comm, group, host) as cells[{}]; a results file holds each "
                 "cell once",
                 it->second));
      check_phases(c.phases, join(at, "phases"), known_names);
      check_phases(c.failed_phases, join(at, "failed_phases"), known_names);
      for (size_t k = 0; k < c.samples.size(); ++k) {
        const std::string sat = join(index(join(at, "samples"), k), "spans");
        for (size_t n = 0; n < c.samples[k].spans.size(); ++n)
          known(c.samples[k].spans[n].name, join(index(sat, n), "name"), known_names);
      }
    }
  }

 private:
  std::string string(const Json& v, const std::string& path, size_t max) const {
    if (!v.is_string()) fail(path, "expected a string");
    const auto& s = v.get_ref<const std::string&>();
    if (s.size() > max) fail(path, fmt::format("is {} bytes long; a results file holds at most {}", s.size(), max));
    if (has_control_characters(s))
      fail(path, "contains control characters; reports print it to terminals, where they would act");
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

  // A phase of the catalog, or one phases_available lists: user phases (--phase
  // FUNC) are named for their function and listed there.
  void known(const std::string& name, const std::string& path, const std::set<std::string>& names) const {
    if (!names.contains(name))
      fail(path, fmt::format("{:?} is no phase of the catalog and not in phases_available; a phase name is one "
                             "of those",
                             name));
  }

  void check_phases(const std::vector<Phase>& phases, const std::string& at, const std::set<std::string>& names) const {
    std::map<std::string, size_t> seen;
    for (size_t k = 0; k < phases.size(); ++k) {
      const std::string name_at = join(index(at, k), "name");
      known(phases[k].name, name_at, names);
      const auto [it, fresh] = seen.emplace(phases[k].name, k);
      if (!fresh)
        fail(name_at,
             fmt::format("{:?} is already {}; a cell holds each phase once", it->first, index(at, it->second)));
    }
  }

  std::string source_;
};

// Duplicate keys and nesting depth, checked while parsing: nlohmann keeps the last
// of two equal keys silently, and would build any depth before the reader saw it.
// A SAX handler around nlohmann's own document builder (its callback parser
// rescans an array at the end of each element, quadratic in the array's length).
class GuardedParser {
 public:
  explicit GuardedParser(const Reader& reader, Json& root) : reader_(reader), dom_(root, true) {}

  bool null() { return value(dom_.null()); }
  bool boolean(bool v) { return value(dom_.boolean(v)); }
  bool number_integer(Json::number_integer_t v) { return value(dom_.number_integer(v)); }
  bool number_unsigned(Json::number_unsigned_t v) { return value(dom_.number_unsigned(v)); }
  bool number_float(Json::number_float_t v, const Json::string_t& s) { return value(dom_.number_float(v, s)); }
  bool string(Json::string_t& v) { return value(dom_.string(v)); }
  bool binary(Json::binary_t& v) { return value(dom_.binary(v)); }
  bool start_object(std::size_t n) {
    open(false);
    return dom_.start_object(n);
  }
  bool key(Json::string_t& k) {
    Frame& f = frames_.back();
    f.key = k;
    if (!f.keys.insert(k).second) reader_.fail(path(), "appears twice in one object; keep one");
    return dom_.key(k);
  }
  bool end_object() {
    frames_.pop_back();
    return value(dom_.end_object());
  }
  bool start_array(std::size_t n) {
    open(true);
    return dom_.start_array(n);
  }
  bool end_array() {
    frames_.pop_back();
    return value(dom_.end_array());
  }
  template <class E>
  bool parse_error(std::size_t at, const std::string& token, const E& e) {
    return dom_.parse_error(at, token, e);
  }

 private:
  struct Frame {
    bool array;
    size_t index;
    std::string key;
    std::set<std::string> keys;
  };

  void open(bool array) {
    if (frames_.size() >= kMaxJsonDepth)
      reader_.fail(path(), fmt::format("nested deeper than {} levels; not a forkscope results file", kMaxJsonDepth));
    frames_.push_back({array, 0, {}, {}});
  }

  // A value ended: the next one in an array has the next index.
  bool value(bool ok) {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
    return ok;
  }

  std::string path() const {
    std::string at;
    for (const Frame& f : frames_) at = f.array ? index(at, f.index) : join(at, f.key);
    return at;
  }

  const Reader& reader_;
  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  std::vector<Frame> frames_;
};

}  // namespace

const Phase* Cell::phase(const std::string& name) const {
  for (const Phase& p : phases) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string to_json(const Run& run, int indent) {
  // Strings come from the system (hostname, errno names); a stray invalid UTF-8
  // byte must not lose a whole run's results.
  return Writer::write(run).dump(indent, ' ', false, Json::error_handler_t::replace);
}

Run run_from_json(const std::string& text, const std::string& source) {
  const Reader reader(source);
  Json root;
  GuardedParser parser(reader, root);
  try {
    Json::sax_parse(text, &parser);
  } catch (const Json::parse_error& e) {
    throw usage_error(
        fmt::format("{}: not valid JSON (error at byte {}); expected a forkscope results file", source, e.byte));
  } catch (const Json::out_of_range&) {
    // The parser's other refusal: a number beyond a double, such as 1e400.
    throw usage_error(fmt::format("{}: holds a number too large to read; expected a forkscope results file", source));
  }
  Run r;
  reader.read(root, "", r, Spec{});
  reader.check(r);
  return r;
}

}  // namespace forkscope
