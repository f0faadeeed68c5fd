#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "forkscope/catalog.h"
#include "forkscope/error.h"
#include "forkscope/probes.h"

namespace forkscope {

namespace {

// Function probes the fentry/kprobe backends would use, per catalog phase.
const char* probe_function(int id) {
  switch (id) {
    case FS_PH_KERNEL_CLONE: return "kernel_clone";
    case FS_PH_COPY_PROCESS: return "copy_process";
    case FS_PH_DUP_TASK_STRUCT: return "dup_task_struct";
    case FS_PH_COPY_CREDS: return "copy_creds";
    case FS_PH_COPY_FILES: return "copy_files";
    case FS_PH_COPY_FS: return "copy_fs";
    case FS_PH_COPY_SIGHAND: return "copy_sighand";
    case FS_PH_COPY_SIGNAL: return "copy_signal";
    case FS_PH_DUP_MM: return "dup_mm";
    case FS_PH_DUP_MMAP: return "dup_mmap";
    case FS_PH_COPY_PAGE_RANGE: return "copy_page_range";
    case FS_PH_ALLOC_PID: return "alloc_pid";
    case FS_PH_WAKE_UP_NEW_TASK: return "wake_up_new_task";
    default: return nullptr;
  }
}

int doctor_command() {
  Host h = read_host();
  std::printf("kernel %s (%s), %d CPUs, THP %s\n\nfeatures\n", h.kernel.c_str(), h.arch.c_str(), h.cpus, h.thp.c_str());
  std::vector<FeatureCheck> checks = probe_features();
  bool priv = false, fentry = false;
  for (const auto& c : checks) {
    std::printf("  %-20s %-4s %s\n", c.name.c_str(), c.ok ? "yes" : "no", c.detail.c_str());
    if (c.name == "privileges") priv = c.ok;
    if (c.name == "fentry/fexit") fentry = c.ok;
  }
  if (!priv) throw privilege_error("doctor needs root to try loading BPF programs; run it with sudo");

  std::unique_ptr<TracepointBackend> tp;
  std::string tp_error;
  try {
    tp = TracepointBackend::open(false);
  } catch (const Error& e) {
    tp_error = e.what();
  }
  std::printf("  %-20s %-4s %s\n", "tracepoint backend", tp ? "yes" : "no",
              tp ? "tp_btf programs loaded and attached" : tp_error.c_str());
  std::string kp_why;
  bool kprobe = kprobes_available(&kp_why);

  std::printf("\nbackends\n  fentry      %s\n  kprobe      %s\n  tracepoint  %s\n", fentry ? "usable" : "unusable",
              kprobe ? "usable" : "unusable", tp ? "usable (forkscope run uses it)" : "unusable");

  std::printf("\nphases: tracepoint source, then function probe for fentry/kprobe\n");
  for (size_t i = 0; i < catalog().size(); i++) {
    const CatalogEntry& e = catalog()[i];
    std::string tp_col = "-";
    if (tp) {
      const PhaseAvailability& a = tp->availability()[i];
      tp_col = a.source.empty() ? "no: " + a.reason : a.source + ": " + a.how;
    }
    std::printf("  %-17s %s\n", e.name, tp_col.c_str());
    if (const char* fn = probe_function(e.id)) {
      std::string why;
      if (!function_in_btf(fn)) why = std::string("fn ") + fn + ": not in kernel BTF (inlined)";
      else if (!fentry) why = std::string("fn ") + fn + ": in BTF, but fentry unusable here";
      else why = std::string("fn ") + fn + ": probeable";
      std::printf("  %-17s %s\n", "", why.c_str());
    }
  }
  return tp ? kExitOk : kExitPrivilege;
}

}  // namespace

void add_doctor_command(CLI::App& app, int& exit_code) {
  CLI::App* sub = app.add_subcommand(
      "doctor", "Show which backends (fentry, kprobe, tracepoint) and which phases this kernel allows, and why the others are missing");
  sub->callback([&exit_code] { exit_code = doctor_command(); });
}

}  // namespace forkscope
