#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "forkscope/error.h"
#include "forkscope/runner.h"
#include "forkscope/size.h"

namespace forkscope {

namespace {

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

const char* const kHeapVmaName = "forkscope heap";

Heap::Heap(uint64_t bytes, bool allow_thp, uint64_t vmas) : bytes_(bytes) {
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
      vma_base_[2 * i * page] = static_cast<unsigned char>(i | 1);
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
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    if (vma_base_) munmap(vma_base_, 2 * vmas_ * page);  // no destructor for a half-built Heap
    throw Error(kExitFailure, "cannot map a " + format_size(bytes) + " heap: " +
                                  std::strerror(errno) + "; choose smaller --heap sizes");
  }
  base_ = static_cast<unsigned char*>(p);
  // Huge pages would leave few page tables for fork to copy: off unless asked for.
  madvise(base_, bytes, allow_thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  // Named, so the per-mapping table says which mapping is the heap ([anon:forkscope
  // heap]); kernels without CONFIG_ANON_VMA_NAME refuse it and it stays [anon].
  prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, reinterpret_cast<unsigned long>(base_), bytes,
        reinterpret_cast<unsigned long>(kHeapVmaName));
  for (uint64_t off = 0; off < bytes; off += page) base_[off] = static_cast<unsigned char>(off >> 12 | 1);
  // The writes must happen: the compiler may not assume nobody reads them.
  asm volatile("" : : "r"(base_) : "memory");
}

Heap::~Heap() {
  if (base_) munmap(base_, bytes_);
  const long page = sysconf(_SC_PAGESIZE);
  if (vma_base_) munmap(vma_base_, 2 * vmas_ * page);
}

uint64_t Heap::checksum() const {
  uint64_t sum = 0;
  const long page = sysconf(_SC_PAGESIZE);
  for (uint64_t off = 0; off < bytes_; off += page) sum += static_cast<const volatile unsigned char*>(base_)[off];
  for (uint64_t i = 0; i < vmas_; i++) sum += static_cast<const volatile unsigned char*>(vma_base_)[2 * i * page];
  return sum;
}

Backing read_backing(uint64_t heap_bytes) {
  Backing b;
  b.heap_bytes_touched = heap_bytes;
  b.vm_pte_bytes = status_kb("/proc/self/status", "VmPTE:");
  b.vm_rss_bytes = status_kb("/proc/self/status", "VmRSS:");
  b.anon_huge_bytes = status_kb("/proc/self/smaps_rollup", "AnonHugePages:");
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) b.vmas++;
  return b;
}

uint64_t mem_available_bytes() { return status_kb("/proc/meminfo", "MemAvailable:"); }

}  // namespace forkscope
