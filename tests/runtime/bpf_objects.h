#pragma once
// The BPF programs, maps and links a forkscope process holds, told apart by
// kernel id: other forkscope runs may share the machine, so names cannot say
// which are ours.
#include <sys/types.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "proc.h"

namespace forkscope::test {

// Polls until done() or the time is up; returns done().
inline bool wait_for(const std::function<bool()>& done, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Whether a child has not exited yet; it stays waitable.
inline bool running(pid_t pid) {
  siginfo_t exited{};
  return waitid(P_PID, pid, &exited, WEXITED | WNOHANG | WNOWAIT) == 0 && exited.si_pid == 0;
}

// The BPF objects a process holds, by kernel id, read from its fd table.
struct BpfIds {
  std::set<uint32_t> progs, maps, links;
  bool empty() const { return progs.empty() && maps.empty() && links.empty(); }
};

inline uint32_t fdinfo_field(const std::string& fdinfo, const std::string& key) {
  const size_t at = fdinfo.find(key + ":");
  return at == std::string::npos
             ? 0
             : static_cast<uint32_t>(std::strtoul(fdinfo.c_str() + at + key.size() + 1, nullptr, 10));
}

inline BpfIds bpf_ids_of(pid_t pid) {
  BpfIds ids;
  std::error_code ec;
  const std::string proc = "/proc/" + std::to_string(pid);
  for (const auto& fd : std::filesystem::directory_iterator(proc + "/fd", ec)) {
    const std::string target = std::filesystem::read_symlink(fd.path(), ec).string();
    const std::string info = slurp(proc + "/fdinfo/" + fd.path().filename().string());
    if (target == "anon_inode:bpf-prog") ids.progs.insert(fdinfo_field(info, "prog_id"));
    if (target == "anon_inode:bpf-map") ids.maps.insert(fdinfo_field(info, "map_id"));
    if (target == "anon_inode:bpf_link") ids.links.insert(fdinfo_field(info, "link_id"));
  }
  return ids;
}

// What the kernel still has loaded, as bpftool lists it.
inline std::set<uint32_t> loaded(const char* kind) {
  FILE* p = popen((std::string("bpftool -j ") + kind + " show 2>/dev/null").c_str(), "r");
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  pclose(p);
  std::set<uint32_t> ids;
  for (const auto& obj : nlohmann::json::parse(text.empty() ? "[]" : text)) ids.insert(obj.at("id").get<uint32_t>());
  return ids;
}

// Which of the ids are still loaded.
inline BpfIds still_loaded(const BpfIds& ours) {
  BpfIds left;
  for (const auto& [kind, mine, out] :
       {std::tuple{"prog", &ours.progs, &left.progs}, std::tuple{"map", &ours.maps, &left.maps},
        std::tuple{"link", &ours.links, &left.links}}) {
    const std::set<uint32_t> now = loaded(kind);
    for (uint32_t id : *mine)
      if (now.count(id)) out->insert(id);
  }
  return left;
}

// The kernel frees programs, maps and links asynchronously once their last
// reference goes: a few seconds of grace.
inline BpfIds left_after_grace(const BpfIds& ours) {
  BpfIds left;
  wait_for([&] { return (left = still_loaded(ours)).empty(); }, 10);
  return left;
}

// Runs forkscope to its end, gathering every BPF object it held on the way.
inline std::pair<Outcome, BpfIds> run_watching_bpf(const std::vector<std::string>& args) {
  const Started s = start_forkscope(args);
  BpfIds seen;
  while (running(s.pid)) {
    const BpfIds now = bpf_ids_of(s.pid);
    seen.progs.insert(now.progs.begin(), now.progs.end());
    seen.maps.insert(now.maps.begin(), now.maps.end());
    seen.links.insert(now.links.begin(), now.links.end());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return {finish_forkscope(s), seen};
}

inline std::string describe(const BpfIds& ids) {
  return std::to_string(ids.progs.size()) + " programs, " + std::to_string(ids.maps.size()) + " maps, " +
         std::to_string(ids.links.size()) + " links";
}

}  // namespace forkscope::test
