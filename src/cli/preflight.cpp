#include "cli/preflight.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "forkscope/results.h"

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

[[noreturn]] void out_dir_failed(const std::string& dir, const std::string& why) {
  throw usage_error("--out " + dir + ": " + why + "; choose another --out");
}

// Under sudo a directory forkscope creates is given to the invoking user, so they
// can remove their results.  fchown through O_NOFOLLOW: what was just made
// cannot have been swapped for someone's link.
void make_dir(const std::filesystem::path& p, const std::optional<FileOwner>& owner, const std::string& dir) {
  if (mkdir(p.c_str(), 0755) != 0) {
    if (errno == EEXIST) return;  // made meanwhile by someone else: not ours to give away
    out_dir_failed(dir, std::string("cannot create ") + p.string() + " (" + std::strerror(errno) + ")");
  }
  if (!owner) return;
  const int fd = open(p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  const bool given = fd >= 0 && fchown(fd, owner->uid, owner->gid) == 0;
  const int err = errno;
  if (fd >= 0) close(fd);
  if (!given) out_dir_failed(dir, std::string("cannot give ") + p.string() + " to the invoking user (" + std::strerror(err) + ")");
}

}  // namespace

void check_kernel_access() {
  check_privileges();
  std::string why;
  if (!ensure_tracefs(&why)) throw privilege_error(why);
  ensure_bpffs();
}

void prepare_out_dir(const std::string& dir) {
  if (dir.empty()) throw usage_error("--out is empty; give a directory, e.g. --out forkscope-out");
  const std::optional<FileOwner> owner = invoking_user();
  const uid_t me = owner ? owner->uid : geteuid();
  std::error_code ec;
  const std::filesystem::path full = std::filesystem::absolute(dir, ec);
  if (ec) out_dir_failed(dir, ec.message());
  // Component by component, as the kernel resolves it: a link another user
  // planted (in /tmp, say) must not choose where root writes.
  std::filesystem::path prefix;
  for (const auto& part : full) {
    prefix /= part;
    struct stat st;
    if (lstat(prefix.c_str(), &st) != 0) {
      if (errno != ENOENT) out_dir_failed(dir, std::string("cannot use ") + prefix.string() + " (" + std::strerror(errno) + ")");
      make_dir(prefix, owner, dir);
    } else if (S_ISLNK(st.st_mode) && st.st_uid != 0 && st.st_uid != me) {
      out_dir_failed(dir, prefix.string() + " is a symbolic link owned by uid " + std::to_string(st.st_uid) +
                              ", neither yours nor root's, so it could point anywhere");
    }
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) out_dir_failed(dir, std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) out_dir_failed(dir, "not a directory");
  if (access(dir.c_str(), W_OK) != 0) out_dir_failed(dir, std::string("cannot write there (") + std::strerror(errno) + ")");
}

}  // namespace forkscope
