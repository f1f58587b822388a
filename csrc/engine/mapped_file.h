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

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;  // false: data_ is a heap copy (platforms without mmap)
};

}  // namespace nm::engine
