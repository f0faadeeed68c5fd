// Results files on disk: the capped read, atomic writes, and who owns what forkscope writes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>

#include "forkscope/error.h"
#include "forkscope/results.h"

namespace forkscope {
namespace {

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

// Closes the descriptor whichever way load_results leaves.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

[[noreturn]] void read_failed(const std::string& path, const std::string& why) {
  throw usage_error(fmt::format("cannot read results file {}: {}; check the path", path, why));
}

// The advice fits the cause: a full disk (or quota) is not a missing directory.
[[noreturn]] void write_failed(const std::string& what, const std::string& path, int err) {
  const char* advice = err == ENOSPC || err == EDQUOT ? "the disk is full; free space or choose another place"
                                                      : "check that its directory exists and is writable";
  throw Error(kExitFailure, fmt::format("cannot write {} {}: {}; {}", what, path, std::strerror(err), advice));
}

size_t first_non_space(const std::string& text) { return text.find_first_not_of(" \t\r\n"); }

}  // namespace

Run load_results(const std::string& path) {
  const Fd in{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) read_failed(path, std::strerror(errno));
  const std::string too_large = fmt::format("larger than any results file (at most {} MiB)", kMaxResultsBytes >> 20);
  struct stat st {};
  if (fstat(in.fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > kMaxResultsBytes)
    read_failed(path, too_large);
  std::string text;
  char buf[65536];
  while (true) {
    const ssize_t n = read(in.fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) read_failed(path, std::strerror(errno));
    if (text.size() + static_cast<size_t>(n) > kMaxResultsBytes) read_failed(path, too_large);
    text.append(buf, static_cast<size_t>(n));
    // A results file is one object: anything else (a device full of zeros, say) is
    // refused from what has been read, without reading on.
    const size_t start = first_non_space(text);
    if (start != std::string::npos && text[start] != '{') break;
  }
  return run_from_json(text, path);
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
      throw usage_error(
          fmt::format("{}={:?} is not a numeric id; unset it, or run forkscope through sudo", name, text));
    return v;
  };
  return FileOwner{id("SUDO_UID", uid), id("SUDO_GID", gid)};
}

void save_results(const Run& run, const std::string& path) {
  write_atomically(path, to_json(run) + "\n", "results file");
}

namespace {

void write_all(int fd, const std::string& text, const std::string& what, const std::string& path) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) write_failed(what, path, errno);
    done += static_cast<size_t>(n);
  }
}

// Shared by results and reports; fsync before the name is given so a crash leaves
// either the old file or the complete new one.
void finish_file(int fd, const std::string& what, const std::string& path) {
  // A new file is 0600 (mkstemp) or under the umask (O_TMPFILE); results are meant
  // to be shared.
  if (fchmod(fd, 0644) != 0) write_failed(what, path, errno);
  // Under sudo the file is the invoking user's, as if they had written it: fchown
  // on the open file, never on a path a planted link could redirect.
  const std::optional<FileOwner> owner = invoking_user();
  if (owner && fchown(fd, owner->uid, owner->gid) != 0) write_failed(what, path, errno);
  if (fsync(fd) != 0) write_failed(what, path, errno);
}

// The file is written unnamed (O_TMPFILE in the target's directory) and named only
// once whole: a SIGKILL while it is written (run saves after every cell) leaves
// nothing behind, and only the two system calls that name it and rename it over
// the target leave a window for a temporary name.  False when the file system
// has no O_TMPFILE (then write_atomically names a temporary file first).
bool write_unnamed(const std::string& path, const std::string& text, const std::string& what) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int fd = open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) return false;
    write_failed(what, path, errno);
  }
  const Fd guard{fd};
  write_all(fd, text, what, path);
  finish_file(fd, what, path);
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  for (int attempt = 0;; attempt++) {
    const std::string name = fmt::format("{}.tmp{}-{}", path, getpid(), attempt);
    if (linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      if (errno == EEXIST && attempt < 16) continue;
      if (errno == ENOENT && attempt == 0) return false;  // no /proc: name it the other way
      write_failed(what, path, errno);
    }
    if (rename(name.c_str(), path.c_str()) != 0) {
      const int err = errno;
      unlink(name.c_str());
      write_failed(what, path, err);
    }
    return true;
  }
}

}  // namespace

void write_atomically(const std::string& path, const std::string& text, const std::string& what) {
  if (write_unnamed(path, text, what)) return;
  TempFile tmp(path);
  if (tmp.fd() < 0) write_failed(what, path, errno);
  write_all(tmp.fd(), text, what, path);
  finish_file(tmp.fd(), what, path);
  if (!tmp.close_fd()) write_failed(what, path, errno);
  if (rename(tmp.path().c_str(), path.c_str()) != 0) write_failed(what, path, errno);
  tmp.commit();
}

}  // namespace forkscope
