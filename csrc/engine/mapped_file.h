// A read-only memory mapping of a whole file (weights stay on disk and are
// paged in on use: loading is fast and resident memory tracks what is read).
#pragma once
#include <cstdint>
#include <string>

namespace nm::engine {

class MappedFile {
 public:
  // Throws std::runtime_error naming the file when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Whether [p, p + n) lies in this file's bytes.
  bool contains(const void* p, uint64_t n) const;
  // Drops the resident pages wholly inside [p, p + n) (a range of this
  // file's bytes that has been copied elsewhere): they stop counting in RSS
  // and are read back from the file if touched again. A no-op without mmap.
  void release(const void* p, uint64_t n) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;  // false: data_ is a heap copy (platforms without mmap)
};

}  // namespace nm::engine
