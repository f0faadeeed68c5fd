#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "forkscope/cgroups.h"
#include "forkscope/catalog.h"
#include "forkscope/error.h"
#include "forkscope/probes.h"

namespace forkscope {

namespace {

int doctor_command() {
  Host h = read_host();
  std::printf("kernel %s (%s), %d CPUs, THP %s\n\nfeatures\n", h.kernel.c_str(), h.arch.c_str(), h.cpus, h.thp.c_str());
  bool priv = false;
  for (const auto& c : probe_features()) {
    std::printf("  %-20s %-4s %s\n", c.name.c_str(), c.ok ? "yes" : "no", c.detail.c_str());
    if (c.name == "privileges") priv = c.ok;
  }
  if (!priv) throw privilege_error("doctor needs root to try loading BPF programs; run it with sudo");

  // trace -- CMD's containment, made and removed for real.
  std::string why;
  if (const auto cgroup = CommandCgroup::create(why)) {
    why = "trace runs its command in a cgroup of its own, made under " +
          cgroup->path().substr(0, cgroup->path().rfind('/')) +
          (access((cgroup->path() + "/cgroup.kill").c_str(), F_OK) == 0 ? ", ended by cgroup.kill"
                                                                        : ", ended member by member (no cgroup.kill)");
    std::printf("  %-20s %-4s %s\n", "trace containment", "yes", why.c_str());
  } else {
    std::printf("  %-20s %-4s %s; what a traced command leaves is ended through forkscope as subreaper\n",
                "trace containment", "no", why.c_str());
  }

  // The plan `forkscope run --backend auto` would use, loaded for real.
  // (A plan that cannot be made, kernel addresses hidden, is shown as landmarks only.)
  RunPlan auto_plan = tracepoint_plan();
  std::unique_ptr<Tracer> tracer;
  std::string load_error;
  try {
    auto_plan = plan_run(PlanOptions{});
    tracer = Tracer::open(auto_plan, false, 1);
  } catch (const Error& e) {
    load_error = e.what();
  }
  std::printf("  %-20s %-4s %s\n", "BPF programs", tracer ? "yes" : "no",
              tracer ? ("loaded and attached as --backend auto would: " + backend_name(tracer->plan())).c_str()
                     : load_error.c_str());

  // yes: only forkscope's syscalls run a program (not the raw pair); the text
  // says which hooks, and why better ones are not used.
  const RunPlan& hooks = tracer ? tracer->plan() : auto_plan;
  if (!tracer) auto_plan.syscall_hooks = choose_syscall_hooks(&auto_plan.syscall_hooks_why);
  std::printf("  %-20s %-4s %s\n", "syscall hooks", hooks.syscall_hooks != SyscallHooks::kRaw ? "yes" : "no",
              (syscall_hooks_text(hooks) +
               (hooks.syscall_hooks_why.empty() ? "" : " (" + hooks.syscall_hooks_why + ")"))
                  .c_str());
  if (tracer) {
    std::string programs;
    for (const std::string& p : tracer->attached_programs()) programs += (programs.empty() ? "" : " ") + p;
    std::printf("  %-20s %-4s %s\n", "programs attached", "", programs.c_str());
  }

  std::printf("\nphases (as --backend auto measures them here; every function tried for real)\n");
  FunctionProber prober;
  const RunPlan& plan = tracer ? tracer->plan() : auto_plan;
  for (const PhaseAvailability& a : availability(plan)) {
    std::printf("  %-17s %s\n", a.name.c_str(),
                (a.source.empty() ? "not measured: " + a.reason : a.source + ": " + a.how).c_str());
  }
  std::printf("\nfunction probes, per catalog function\n");
  for (const CatalogEntry& e : catalog()) {
    for (const std::string& fn : e.functions) {
      std::string f = prober.try_fentry(fn), k = prober.try_kprobe(fn);
      std::printf("  %-17s %-17s fentry: %s; kprobe: %s\n", e.name, fn.c_str(), f.empty() ? "yes" : f.c_str(),
                  k.empty() ? "yes" : k.c_str());
    }
  }
  return tracer ? kExitOk : kExitPrivilege;
}

}  // namespace

void add_doctor_command(CLI::App& app, int& exit_code) {
  CLI::App* sub = app.add_subcommand(
      "doctor",
      "Show which backends (fentry, kprobe, tracepoint) and which phases this kernel allows, and why the others are "
      "missing; every probe is tried for real");
  sub->callback([&exit_code] { exit_code = doctor_command(); });
}

}  // namespace forkscope
