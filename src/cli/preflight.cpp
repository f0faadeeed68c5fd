#include "cli/preflight.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <optional>

#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "forkscope/results.h"
#include "forkscope/untrusted.h"

namespace forkscope {
namespace {

constexpr const char* kBpffs = "/sys/fs/bpf";

// forkscope pins nothing itself.  The BPF filesystem is checked up front, and
// mounted like tracefs when missing, so that "nothing of ours is pinned" can be
// verified on the machine being profiled, and a machine without one fails here,
// before anything is loaded, not halfway through a sweep.
void ensure_bpffs() {
  struct statfs st;
  if (statfs(kBpffs, &st) == 0 && st.f_type == BPF_FS_MAGIC) return;
  if (mount("bpf", kBpffs, "bpf", 0, nullptr) == 0) return;
  throw privilege_error(std::string("the BPF filesystem is not mounted and mounting it failed (") +
                        std::strerror(errno) + "); run: mount -t bpf bpf " + kBpffs);
}

[[noreturn]] void path_failed(const std::string& option, const std::string& path, const std::string& why) {
  throw usage_error(option + " " + safe_text(path) + ": " + why + "; choose another " + option);
}

[[noreturn]] void out_dir_failed(const std::string& dir, const std::string& why) { path_failed("--out", dir, why); }

uid_t invoking_uid(const std::optional<FileOwner>& owner) { return owner ? owner->uid : geteuid(); }

// The absolute form of PATH, refused when too long to hold our files: the
// kernel's limits, checked before anything is made.
std::filesystem::path absolute_path(const std::string& option, const std::string& path) {
  if (path.empty()) throw usage_error(option + " is empty; give a path, e.g. " + option + " forkscope-out");
  std::error_code ec;
  const std::filesystem::path full = std::filesystem::absolute(path, ec);
  if (ec) path_failed(option, path, ec.message());
  // Room for "/report.html" and the temporary file's suffix.
  if (full.native().size() + 32 >= PATH_MAX) path_failed(option, path, "the path is too long");
  for (const auto& part : full)
    if (part.native().size() > NAME_MAX)
      path_failed(option, path, "a name in it is longer than " + std::to_string(NAME_MAX) + " bytes");
  return full;
}

// Component by component, as the kernel resolves it: a link another user planted
// (in /tmp, say) must not choose where root writes.  Returns how many leading
// components exist (all of them, or up to the first missing one).
size_t existing_prefix(const std::string& option, const std::string& path, const std::filesystem::path& full) {
  const uid_t me = invoking_uid(invoking_user());
  std::filesystem::path prefix;
  size_t n = 0;
  for (const auto& part : full) {
    prefix /= part;
    struct stat st;
    if (lstat(prefix.c_str(), &st) != 0) {
      if (errno == ENOENT) return n;
      path_failed(option, path,
                  std::string("cannot use ") + safe_text(prefix.string()) + " (" + std::strerror(errno) + ")");
    }
    if (S_ISLNK(st.st_mode) && st.st_uid != 0 && st.st_uid != me)
      path_failed(option, path,
                  safe_text(prefix.string()) + " is a symbolic link owned by uid " + std::to_string(st.st_uid) +
                      ", neither yours nor root's, so it could point anywhere");
    n++;
  }
  return n;
}

// Whether something can really be made in DIR: root passes access() on a
// read-only or virtual file system (/sys), so a file (or directory) is made and
// removed.
std::string try_make_in(const std::filesystem::path& dir, bool as_directory) {
  std::string probe = (dir / ".forkscope-probe-XXXXXX").string();
  if (as_directory) {
    if (!mkdtemp(probe.data())) return std::strerror(errno);
    rmdir(probe.c_str());
    return "";
  }
  const int fd = mkstemp(probe.data());
  if (fd < 0) return std::strerror(errno);
  close(fd);
  unlink(probe.c_str());
  return "";
}

// Under sudo a directory forkscope creates is given to the invoking user, so they
// can remove their results.  fchown through O_NOFOLLOW: what was just made
// cannot have been swapped for someone's link.
void make_dir(const std::filesystem::path& p, const std::optional<FileOwner>& owner, const std::string& dir) {
  if (mkdir(p.c_str(), 0755) != 0) {
    if (errno == EEXIST) return;  // made meanwhile by someone else: not ours to give away
    out_dir_failed(dir, std::string("cannot create ") + safe_text(p.string()) + " (" + std::strerror(errno) + ")");
  }
  if (!owner) return;
  const int fd = open(p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  const bool given = fd >= 0 && fchown(fd, owner->uid, owner->gid) == 0;
  const int err = errno;
  if (fd >= 0) close(fd);
  if (!given)
    out_dir_failed(dir, std::string("cannot give ") + safe_text(p.string()) + " to the invoking user (" +
                            std::strerror(err) + ")");
}

}  // namespace

void check_kernel_access() {
  check_privileges();
  std::string why;
  if (!ensure_tracefs(&why)) throw privilege_error(why);
  ensure_bpffs();
  check_cap_sys_admin();
}

void check_out_dir(const std::string& dir) {
  const std::filesystem::path full = absolute_path("--out", dir);
  const size_t existing = existing_prefix("--out", dir, full);
  std::filesystem::path parent;
  size_t n = 0;
  for (const auto& part : full) {
    if (n++ == existing) break;
    parent /= part;
  }
  struct stat st;
  if (stat(parent.c_str(), &st) != 0)
    out_dir_failed(dir, std::string("cannot use ") + safe_text(parent.string()) + " (" + std::strerror(errno) + ")");
  if (!S_ISDIR(st.st_mode)) out_dir_failed(dir, safe_text(parent.string()) + " is not a directory");
  const bool missing = existing < static_cast<size_t>(std::distance(full.begin(), full.end()));
  if (std::string why = try_make_in(parent, missing); !why.empty())
    out_dir_failed(dir, std::string(missing ? "cannot create a directory in " : "cannot write in ") +
                            safe_text(parent.string()) + " (" + why + ")");
  if (missing) return;
  for (const char* name : {"results.json", "report.html"}) {
    if (stat((full / name).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      out_dir_failed(dir, std::string(name) + " there is a directory, so it cannot be written");
  }
}

void prepare_out_dir(const std::string& dir) {
  check_out_dir(dir);
  const std::optional<FileOwner> owner = invoking_user();
  const std::filesystem::path full = absolute_path("--out", dir);
  std::filesystem::path prefix;
  for (const auto& part : full) {
    prefix /= part;
    struct stat st;
    if (lstat(prefix.c_str(), &st) != 0) {
      if (errno != ENOENT)
        out_dir_failed(dir,
                       std::string("cannot use ") + safe_text(prefix.string()) + " (" + std::strerror(errno) + ")");
      make_dir(prefix, owner, dir);
    }
  }
  // Links were checked above: re-checked here, after making, in case one appeared meanwhile.
  existing_prefix("--out", dir, full);
}

void check_out_file(const std::string& path, const std::string& option) {
  const std::filesystem::path full = absolute_path(option, path);
  const size_t existing = existing_prefix(option, path, full);
  const size_t parts = static_cast<size_t>(std::distance(full.begin(), full.end()));
  if (existing + 1 < parts)
    path_failed(option, path, "its directory " + safe_text(full.parent_path().string()) + " does not exist");
  struct stat st;
  if (stat(full.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path_failed(option, path, "it is a directory");
}

}  // namespace forkscope
