#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "forkscope/cgroups.h"
#include "forkscope/error.h"
#include "forkscope/huge_pages.h"
#include "forkscope/runner.h"
#include "forkscope/size.h"
#include "forkscope/untrusted.h"

namespace forkscope {

namespace {

constexpr uint64_t kHuge = 2ull << 20;  // a PMD's worth on x86-64 and arm64 (4K pages)

// "VmPTE:	     128 kB" -> bytes
uint64_t status_kb(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::strtoull(line.c_str() + key.size(), nullptr, 10) * 1024;
  }
  return 0;
}

}  // namespace

ThpLayout parse_thp_layout(const std::string& value) {
  if (value.empty() || value == "pmd") return ThpLayout::kPmd;
  if (value == "pte") return ThpLayout::kPte;
  if (value == "none") return ThpLayout::kNone;
  throw usage_error("--thp " + safe_text(value) +
                    ": expected pmd (huge pages mapped by a PMD, the same as --thp alone), pte (2 MiB folios "
                    "mapped by PTEs) or none");
}

std::string thp_layout_name(ThpLayout layout) {
  return layout == ThpLayout::kPmd ? "pmd" : layout == ThpLayout::kPte ? "pte" : "";
}

std::vector<uint64_t> parse_vma_counts(const std::string& list) {
  std::vector<uint64_t> out;
  for (size_t begin = 0;;) {
    const size_t comma = list.find(',', begin);
    const std::string item = list.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
    const std::optional<uint64_t> n = parse_whole_number(item);
    if (!n)
      throw usage_error("--vmas " + safe_text(list) + ": item " + std::to_string(out.size() + 1) + " (" +
                        safe_text(item) +
                        ") is not a whole number; give counts separated by commas, e.g. --vmas 0,1000,4000");
    if (std::find(out.begin(), out.end(), *n) != out.end())
      throw usage_error("--vmas " + std::to_string(*n) + " is given twice; give each count once");
    out.push_back(*n);
    if (comma == std::string::npos) return out;
    begin = comma + 1;
  }
}

const char* const kHeapVmaName = "forkscope heap";

Heap::Heap(uint64_t bytes, ThpLayout thp, uint64_t vmas, bool touch_vmas)
    : bytes_(bytes), thp_(thp), touch_vmas_(touch_vmas) {
  const long page = sysconf(_SC_PAGESIZE);
  if (vmas > 0) {
    void* v = mmap(nullptr, 2 * vmas * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v == MAP_FAILED) {
      throw Error(kExitFailure, "cannot map " + std::to_string(vmas) + " extra VMAs: " + std::strerror(errno) +
                                    "; choose a smaller --vmas");
    }
    vma_base_ = static_cast<unsigned char*>(v);
    vmas_ = vmas;
    for (uint64_t i = 0; i < vmas; i++) {
      if (touch_vmas) vma_base_[2 * i * page] = static_cast<unsigned char>(i | 1);
      // The page after each one goes, so neighbours cannot merge into one VMA.
      if (munmap(vma_base_ + (2 * i + 1) * page, page) != 0) {
        const int err = errno;
        munmap(vma_base_, 2 * vmas * page);  // holes in the range are fine
        vma_base_ = nullptr;
        throw Error(kExitFailure, "cannot split " + std::to_string(vmas) + " extra VMAs: " + std::strerror(err) +
                                      " (vm.max_map_count?); choose a smaller --vmas");
      }
    }
  }
  if (bytes == 0) return;
  // Huge pages need 2 MiB-aligned ranges: map 2 MiB more and start at the boundary.
  map_bytes_ = thp == ThpLayout::kNone ? bytes : bytes + kHuge;
  void* p = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    if (vma_base_) munmap(vma_base_, 2 * vmas_ * page);  // no destructor for a half-built Heap
    throw Error(kExitFailure, "cannot map a " + format_size(bytes) + " heap: " + std::strerror(errno) +
                                  "; choose smaller --heap sizes");
  }
  map_ = static_cast<unsigned char*>(p);
  const uintptr_t at = reinterpret_cast<uintptr_t>(map_);
  base_ = thp == ThpLayout::kNone ? map_ : reinterpret_cast<unsigned char*>((at + kHuge - 1) & ~(kHuge - 1));
  // Huge pages would leave few page tables for fork to copy: off unless asked for.
  madvise(map_, map_bytes_, thp == ThpLayout::kNone ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
  // Named, so the per-mapping table says which mapping is the heap ([anon:forkscope
  // heap]); kernels without CONFIG_ANON_VMA_NAME refuse it and it stays [anon].  The
  // whole mapping, alignment slack included, so the heap stays one VMA.
  prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, reinterpret_cast<unsigned long>(map_), map_bytes_,
        reinterpret_cast<unsigned long>(kHeapVmaName));
  for (uint64_t off = 0; off < bytes; off += page) base_[off] = static_cast<unsigned char>(off >> 12 | 1);
  if (thp == ThpLayout::kPte) {
    // Changing the protection of one page inside a PMD-mapped huge page splits the
    // PMD into 512 PTEs but keeps the 2 MiB folio; changing it back merges the
    // VMAs again, so the heap stays one VMA with PTE-mapped large folios.
    for (uint64_t off = 0; off + kHuge <= bytes; off += kHuge) {
      if (mprotect(base_ + off, page, PROT_READ) != 0 || mprotect(base_ + off, page, PROT_READ | PROT_WRITE) != 0) {
        const int err = errno;
        munmap(map_, map_bytes_);
        if (vma_base_) munmap(vma_base_, 2 * vmas_ * page);
        throw Error(kExitFailure, std::string("cannot split the heap's huge-page mappings: ") + std::strerror(err));
      }
    }
  }
  // The writes must happen: the compiler may not assume nobody reads them.
  asm volatile("" : : "r"(base_) : "memory");
}

Heap::~Heap() {
  if (map_) munmap(map_, map_bytes_);
  const long page = sysconf(_SC_PAGESIZE);
  if (vma_base_) munmap(vma_base_, 2 * vmas_ * page);
}

uint64_t Heap::checksum() const {
  uint64_t sum = 0;
  const long page = sysconf(_SC_PAGESIZE);
  for (uint64_t off = 0; off < bytes_; off += page) sum += static_cast<const volatile unsigned char*>(base_)[off];
  if (touch_vmas_) {
    for (uint64_t i = 0; i < vmas_; i++) sum += static_cast<const volatile unsigned char*>(vma_base_)[2 * i * page];
  }
  return sum;
}

uint64_t Heap::large_folio_bytes() const {
  if (bytes_ == 0 || thp_ == ThpLayout::kNone) return 0;  // MADV_NOHUGEPAGE: small pages only
  const long page = sysconf(_SC_PAGESIZE);
  const int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  const int flags = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
  uint64_t large = 0;
  if (pagemap >= 0 && flags >= 0) {
    const uint64_t pages = bytes_ / page;
    std::vector<uint64_t> entries(pages);
    const off_t first = static_cast<off_t>(reinterpret_cast<uintptr_t>(base_) / page * 8);
    if (pread(pagemap, entries.data(), pages * 8, first) == static_cast<ssize_t>(pages * 8)) {
      // PFNs of a large folio are consecutive: read their flags a run at a time.
      constexpr uint64_t kPresent = 1ull << 63, kPfn = (1ull << 55) - 1, kThp = 1ull << 22;
      std::vector<uint64_t> run;
      for (uint64_t i = 0; i < pages;) {
        const uint64_t pfn = entries[i] & kPfn;
        uint64_t n = 1;
        while (i + n < pages && (entries[i + n] & kPresent) && (entries[i + n] & kPfn) == pfn + n && n < 512) n++;
        if ((entries[i] & kPresent) && pfn != 0) {
          run.resize(n);
          if (pread(flags, run.data(), n * 8, static_cast<off_t>(pfn * 8)) == static_cast<ssize_t>(n * 8)) {
            for (uint64_t f : run) large += (f & kThp) ? page : 0;
          }
        }
        i += n;
      }
    }
  }
  if (pagemap >= 0) close(pagemap);
  if (flags >= 0) close(flags);
  return large;
}

Backing read_backing(const Heap& heap) {
  Backing b;
  b.heap_bytes_touched = heap.bytes();
  b.large_folio_bytes = heap.large_folio_bytes();
  b.vm_pte_bytes = status_kb("/proc/self/status", "VmPTE:");
  b.vm_rss_bytes = status_kb("/proc/self/status", "VmRSS:");
  b.anon_huge_bytes = read_anon_huge_bytes(getpid()).value_or(0);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) b.vmas++;
  return b;
}

namespace {

// The first line of a cgroup control file as a number; nullopt when missing or
// "max" (no limit).
std::optional<uint64_t> read_limit(const std::string& file) {
  std::ifstream in(file);
  std::string word;
  if (!(in >> word) || word == "max") return std::nullopt;
  return parse_whole_number(word);
}

}  // namespace

MemoryRoom cgroup_memory_room(const std::string& mountinfo, const std::string& cgroup_file) {
  MemoryRoom room;
  auto consider = [&](uint64_t limit, uint64_t used, const std::string& dir, const char* file) {
    const uint64_t left = limit > used ? limit - used : 0;
    if (room.limited && left >= room.bytes) return;
    room = MemoryRoom{left, true, safe_text(dir) + "/" + file};
  };
  // v2, then v1 (memory): from the process's own cgroup up to the mount's root;
  // each level's limit bounds everything under it.
  for (const std::string controller : {"", "memory"}) {
    std::optional<OwnCgroup> own = own_cgroup_dir(mountinfo, cgroup_file, controller);
    if (!own) continue;
    std::string& rel = own->rel;
    for (;;) {
      const std::string dir = own->dir();
      if (controller.empty()) {
        const std::optional<uint64_t> current = read_limit(dir + "/memory.current");
        for (const char* file : {"memory.max", "memory.high"}) {
          if (const auto limit = read_limit(dir + "/" + file); limit && current) consider(*limit, *current, dir, file);
        }
      } else {
        const auto limit = read_limit(dir + "/memory.limit_in_bytes");
        const auto used = read_limit(dir + "/memory.usage_in_bytes");
        if (limit && used) consider(*limit, *used, dir, "memory.limit_in_bytes");
      }
      if (rel.empty() || rel == "/") break;
      const size_t slash = rel.find_last_of('/');
      rel = slash == 0 || slash == std::string::npos ? "/" : rel.substr(0, slash);
    }
  }
  return room;
}

MemoryRoom memory_room() {
  MemoryRoom room = cgroup_memory_room("/proc/self/mountinfo", "/proc/self/cgroup");
  const uint64_t avail = status_kb("/proc/meminfo", "MemAvailable:");
  if (avail && (!room.limited || avail < room.bytes)) room = MemoryRoom{avail, true, "MemAvailable"};
  return room;
}

}  // namespace forkscope
