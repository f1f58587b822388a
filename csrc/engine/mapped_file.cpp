#include "engine/mapped_file.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define NM_HAVE_MMAP 1
#endif

namespace nm::engine {

MappedFile::MappedFile(const std::string& path) : path_(path) {
#if NM_HAVE_MMAP
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error("cannot stat " + path + ": " + std::strerror(e));
  }
  size_ = (uint64_t)st.st_size;
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw std::runtime_error("cannot map " + path + ": " + std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
    mapped_ = true;
  }
  ::close(fd);  // the mapping keeps the file referenced
#else
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  std::fseek(f, 0, SEEK_END);
  long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  uint8_t* buf = new uint8_t[n > 0 ? n : 1];
  if (n > 0 && std::fread(buf, 1, (size_t)n, f) != (size_t)n) {
    delete[] buf;
    std::fclose(f);
    throw std::runtime_error("cannot read " + path);
  }
  std::fclose(f);
  data_ = buf;
  size_ = (uint64_t)n;
#endif
}

bool MappedFile::contains(const void* p, uint64_t n) const {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  return data_ && b >= data_ && (uint64_t)(b - data_) <= size_ && size_ - (uint64_t)(b - data_) >= n;
}

void MappedFile::release(const void* p, uint64_t n) const {
#if NM_HAVE_MMAP
  if (!mapped_ || !contains(p, n)) return;
  const uintptr_t page = (uintptr_t)::sysconf(_SC_PAGESIZE);
  const uintptr_t b = (uintptr_t)p, e = b + n;
  const uintptr_t b2 = (b + page - 1) / page * page, e2 = e / page * page;
  // advice only: a failure leaves the pages resident, nothing else
  if (e2 > b2) (void)::madvise(reinterpret_cast<void*>(b2), e2 - b2, MADV_DONTNEED);
#else
  (void)p;
  (void)n;
#endif
}

MappedFile::~MappedFile() {
#if NM_HAVE_MMAP
  if (mapped_ && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
#else
  delete[] data_;
#endif
}

}  // namespace nm::engine
