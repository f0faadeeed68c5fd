#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "forkscope/untrusted.h"

namespace forkscope {

namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

uint64_t effective_caps() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::strtoull(line.c_str() + 7, nullptr, 16);
  }
  return 0;
}

constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;

bool has_cap(uint64_t caps, int cap) { return (caps >> cap) & 1; }

}  // namespace

Host read_host() {
  Host h;
  struct utsname u;
  if (uname(&u) == 0) {
    // Set by whoever administers the machine (or a container): made safe here.
    h.hostname = safe_text(u.nodename);
    h.kernel = safe_text(u.release);
    h.arch = safe_text(u.machine);
  }
  h.cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  std::string thp = read_first_line("/sys/kernel/mm/transparent_hugepage/enabled");
  auto open = thp.find('['), close = thp.find(']');
  h.thp = (open != std::string::npos && close != std::string::npos && close > open)
              ? thp.substr(open + 1, close - open - 1)
              : "unknown";
  return h;
}

void check_cap_sys_admin() {
  if (!has_cap(effective_caps(), kCapSysAdmin))
    throw privilege_error(
        "forkscope needs CAP_SYS_ADMIN (root): with CAP_BPF and CAP_PERFMON alone the kernel refuses its "
        "programs; run it with sudo");
}

void check_privileges() {
  uint64_t caps = effective_caps();
  bool ok = has_cap(caps, kCapSysAdmin) || (has_cap(caps, kCapBpf) && has_cap(caps, kCapPerfmon));
  if (!ok) {
    throw privilege_error(
        "forkscope needs root (CAP_SYS_ADMIN; CAP_BPF and CAP_PERFMON alone are not enough) to load BPF "
        "programs; run it with sudo");
  }
  if (!exists("/sys/kernel/btf/vmlinux")) {
    throw privilege_error(
        "this kernel has no BTF (/sys/kernel/btf/vmlinux missing); forkscope's CO-RE "
        "programs need a kernel built with CONFIG_DEBUG_INFO_BTF=y");
  }
}

bool ensure_tracefs(std::string* why) {
  if (exists("/sys/kernel/tracing/events")) return true;
  if (::mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0) return true;
  if (why) {
    *why = std::string("tracefs is not mounted and mounting it failed (") + std::strerror(errno) +
           "); run: mount -t tracefs nodev /sys/kernel/tracing";
  }
  return false;
}

const std::vector<std::string>& hooked_syscall_events() {
  static const std::vector<std::string> events = [] {
    std::vector<std::string> e;
    for (const HookedSyscall& s : hooked_syscalls()) e.push_back(std::string("sys_enter_") + s.name);
    for (const HookedSyscall& s : hooked_syscalls())
      if (s.returns) e.push_back(std::string("sys_exit_") + s.name);
    return e;
  }();
  return events;
}

SyscallHooks choose_syscall_hooks(std::string* why) {
  std::string tracefs_why;
  if (!ensure_tracefs(&tracefs_why)) {
    if (why) *why = tracefs_why;
    return SyscallHooks::kRaw;
  }
  for (const std::string& e : hooked_syscall_events()) {
    if (!exists("/sys/kernel/tracing/events/syscalls/" + e + "/id")) {
      if (why) *why = "no syscalls:" + e + " tracepoint (CONFIG_FTRACE_SYSCALLS off?)";
      return SyscallHooks::kRaw;
    }
  }
  return SyscallHooks::kPerSyscall;
}

FunctionProber::FunctionProber() : btf_(btf__load_vmlinux_btf()) {}

FunctionProber::~FunctionProber() {
  if (btf_) btf__free(btf_);
}

bool FunctionProber::in_btf(const std::string& function) const {
  return btf_ && btf__find_by_name_kind(btf_, function.c_str(), BTF_KIND_FUNC) > 0;
}

namespace {

// r0 = 0; exit: the smallest program the verifier accepts.
int load_minimal(bpf_prog_type type, const bpf_prog_load_opts* opts) {
  struct bpf_insn insns[2] = {};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[1].code = BPF_JMP | BPF_EXIT;
  return bpf_prog_load(type, "fs_try", "GPL", insns, 2, opts);
}

int read_int_file(const char* path) {
  std::ifstream in(path);
  int v = -1;
  in >> v;
  return v;
}

}  // namespace

std::string FunctionProber::try_fentry(const std::string& function) const {
  if (!btf_) return "no kernel BTF";
  int id = btf__find_by_name_kind(btf_, function.c_str(), BTF_KIND_FUNC);
  if (id <= 0) return "not in kernel BTF (inlined or not a traceable function)";
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_TRACE_FENTRY,
              .attach_btf_id = static_cast<__u32>(id));
  int fd = load_minimal(BPF_PROG_TYPE_TRACING, &opts);
  if (fd < 0) {
    int err = errno;
    std::string r = std::string("fentry load refused: ") + std::strerror(err);
    if (err == EPERM) r += " (ftrace is locked on this kernel)";
    return r;
  }
  int link = bpf_raw_tracepoint_open(nullptr, fd);
  std::string r;
  if (link < 0) r = std::string("fentry attach refused: ") + std::strerror(errno);
  else ::close(link);
  ::close(fd);
  return r;
}

std::string FunctionProber::try_kprobe(const std::string& function) const {
  const int type = read_int_file("/sys/bus/event_source/devices/kprobe/type");
  if (type < 0) return "kprobes are not built into this kernel (no kprobe PMU; CONFIG_KPROBES not set)";
  int prog = load_minimal(BPF_PROG_TYPE_KPROBE, nullptr);
  if (prog < 0) return std::string("kprobe program refused: ") + std::strerror(errno);
  struct perf_event_attr attr = {};
  attr.size = sizeof(attr);
  attr.type = static_cast<__u32>(type);
  attr.config1 = reinterpret_cast<uint64_t>(function.c_str());  // kprobe_func
  int pfd = static_cast<int>(syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
  std::string r;
  if (pfd < 0) {
    r = std::string("kprobe on ") + function + " refused: " + std::strerror(errno);
    if (errno == ENOENT || errno == EINVAL) r += " (no such probeable function: inlined or blacklisted)";
  } else {
    if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog) != 0)
      r = std::string("kprobe attach refused: ") + std::strerror(errno);
    ::close(pfd);
  }
  ::close(prog);
  return r;
}

bool kprobes_available(std::string* why) {
  if (exists("/sys/bus/event_source/devices/kprobe/type")) return true;
  if (why) *why = "kprobes are not built into this kernel (no kprobe PMU; CONFIG_KPROBES not set)";
  return false;
}

std::vector<FeatureCheck> probe_features() {
  std::vector<FeatureCheck> out;
  uint64_t caps = effective_caps();
  // CAP_BPF+CAP_PERFMON without CAP_SYS_ADMIN: the kernel refuses forkscope's
  // programs (tried on 6.18: the load fails with EPERM), so CAP_SYS_ADMIN is needed.
  const bool priv = has_cap(caps, kCapSysAdmin);
  const bool bpf_only = !priv && has_cap(caps, kCapBpf) && has_cap(caps, kCapPerfmon);
  out.push_back({"privileges", priv,
                 priv ? "CAP_SYS_ADMIN present"
                 : bpf_only
                     ? "CAP_BPF+CAP_PERFMON without CAP_SYS_ADMIN: the kernel refuses forkscope's programs; run as root"
                     : "missing CAP_SYS_ADMIN: run as root"});
  bool btf = exists("/sys/kernel/btf/vmlinux");
  out.push_back({"kernel BTF", btf, btf ? "/sys/kernel/btf/vmlinux" : "missing: needs CONFIG_DEBUG_INFO_BTF=y"});
  std::string why;
  bool tracefs = ensure_tracefs(&why);
  out.push_back({"tracefs", tracefs, tracefs ? "/sys/kernel/tracing" : why});
  Kallsyms ks = Kallsyms::load();
  out.push_back({"kallsyms addresses", ks.readable(),
                 ks.readable() ? "readable: allocation call sites resolve to functions"
                               : "addresses hidden (kptr_restrict): landmarks by call site unavailable"});
  if (priv && btf) {
    std::string r = FunctionProber().try_fentry("copy_process");
    out.push_back({"fentry/fexit", r.empty(), r.empty() ? "attached to copy_process" : r});
  } else {
    out.push_back({"fentry/fexit", false, "not tried: needs privileges and BTF"});
  }
  bool kp = kprobes_available(&why);
  out.push_back({"kprobe/kretprobe", kp, kp ? "kprobe PMU present" : why});
  return out;
}

}  // namespace forkscope
