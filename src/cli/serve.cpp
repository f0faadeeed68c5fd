// forkscope serve: per-phase launch metrics for Prometheus, until SIGINT/SIGTERM.
#include "cli/serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cli/commands.h"
#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "forkscope/target.h"

namespace forkscope {

namespace {

// ADDR:PORT (IPv4) or [ADDR6]:PORT, as civetweb takes it.
void check_listen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  auto bad = [&](const std::string& why) {
    return usage_error("--listen '" + listen + "': " + why + "; expected ADDR:PORT, e.g. 127.0.0.1:9464 or [::1]:9464");
  };
  if (colon == std::string::npos || colon == 0) throw bad("no address");
  const std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) < 1 || std::stoi(port) > 65535)
    throw bad("the port must be a number from 1 to 65535");
  unsigned char buf[sizeof(in6_addr)];
  const bool v6 = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (v6 ? inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) != 1
         : inet_pton(AF_INET, host.c_str(), buf) != 1)
    throw bad("the address must be an IPv4 address or an IPv6 one in brackets");
}

std::string self_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : exe.parent_path().string();
}

}  // namespace

void add_serve_options(CLI::App& app, ServeOptions& o, bool& all) {
  app.add_option("--listen", o.listen, "ADDR:PORT to serve /metrics on ([::1]:PORT for IPv6)")->capture_default_str();
  app.add_flag("-a,--all", all, "Follow every task on the system but forkscope (the default)");
  app.add_option("-p,--pid", o.pid, "Follow this running process and the processes it launches from now on");
  app.add_option("--cgroup", o.cgroup,
                 "Follow every task in this cgroup v2 directory (under the cgroup2 mount,\n"
                 "/sys/fs/cgroup or /sys/fs/cgroup/unified) and its descendants");
  app.add_option("--max-groups", o.max_groups,
                 "(command, kind) groups with a kernel cell and label set of their own; launches of the "
                 "rest count in comm=\"(other)\"")
      ->capture_default_str();
  app.add_option("--evict-after", o.evict_after_s,
                 "Seconds without growth after which a group is evicted: its cell goes to the next new "
                 "command, its series leave /metrics until it comes back (its counters resume); 0: never "
                 "(new commands past --max-groups then count in comm=\"(other)\")")
      ->capture_default_str();
  app.add_option("--backend", o.backend, "auto, fentry, kprobe or tracepoint, as for run")->capture_default_str();
  app.add_option("--depth", o.depth,
                 "syscall, process or full, as for run (shallower: cheaper for every task on the machine); "
                 "process gives the launch syscall, copy_process and dup_mmap; full adds copy_page_range "
                 "and per-mapping copy time")
      ->capture_default_str();
  app.add_flag("-q,--quiet", o.quiet, "Nothing on stderr but errors");
  app.add_flag("-v,--verbose", o.verbose, "Show libbpf's log");
}

void validate_serve(ServeOptions& o, bool all) {
  if (all + (o.pid != 0) + !o.cgroup.empty() > 1) throw usage_error("give only one of -a, -p PID and --cgroup PATH");
  check_listen(o.listen);
  if (o.max_groups < 1 || o.max_groups > kTraceGroups)
    throw usage_error("--max-groups must be between 1 and " + std::to_string(kTraceGroups) +
                      " (the kernel side's group cells)");
  if (!(o.evict_after_s >= 0 && o.evict_after_s <= 1e9))
    throw usage_error("--evict-after must be between 0 and 1e9 seconds");
  if (o.pid != 0) o.pid = check_pid_target(o.pid);
  if (!o.cgroup.empty()) check_cgroup_target(o.cgroup);
  parse_backend(o.backend);
  parse_depth(o.depth);
}

std::vector<std::string> serve_arguments(const ServeOptions& o) {
  std::vector<std::string> args = {"--listen",      o.listen,
                                   "--max-groups",  std::to_string(o.max_groups),
                                   "--evict-after", std::to_string(o.evict_after_s),
                                   "--backend",     o.backend,
                                   "--depth",       o.depth};
  if (o.pid > 0) args.insert(args.end(), {"-p", std::to_string(o.pid)});
  if (!o.cgroup.empty()) args.insert(args.end(), {"--cgroup", o.cgroup});
  if (o.quiet) args.push_back("-q");
  if (o.verbose) args.push_back("-v");
  return args;
}

void add_serve_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ServeOptions>();
  auto all = std::make_shared<bool>(false);
  CLI::App* sub =
      app.add_subcommand("serve",
                         "Follow launches continuously and serve per-phase launch metrics in the Prometheus\n"
                         "text format on http://ADDR:PORT/metrics, read from the in-kernel aggregates at\n"
                         "scrape time.  Runs until SIGINT or SIGTERM (exit 0), then detaches everything.\n"
                         "Examples:\n"
                         "  forkscope serve\n"
                         "  forkscope serve --listen 0.0.0.0:9464 --cgroup /sys/fs/cgroup/system.slice");
  add_serve_options(*sub, *opts, *all);
  sub->callback([opts, all, &exit_code] {
    validate_serve(*opts, *all);
    const std::string program = self_dir() + "/forkscope-serve";
    std::vector<std::string> args = serve_arguments(*opts);
    std::vector<char*> argv{const_cast<char*>(program.c_str())};
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(program.c_str(), argv.data());
    exit_code = kExitFailure;
    throw Error(kExitFailure,
                "cannot run " + program + ": " + std::strerror(errno) + "; it is built and installed with forkscope");
  });
}

}  // namespace forkscope
