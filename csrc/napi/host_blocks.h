// Host memory for bytes handed to JavaScript (napi/convert.h HostBuffer):
// 64-byte aligned blocks. Large blocks that V8 collects go back to a
// process-wide cache for the next allocation of the same size instead of to
// the C library, which returns such blocks to the kernel: a decode step's
// logits (vocab floats) were then faulted in again every step, page by page
// (slow on a virtual machine: bench/NOTES.md).
#pragma once
#include <cstddef>

namespace nm::napi {

// Bytes a request of `bytes` occupies (a multiple of 64, at least 64).
size_t host_block_size(size_t bytes);
// A block of host_block_size(bytes) bytes, unset; throws std::bad_alloc.
void* host_block_alloc(size_t bytes);
// Gives back p from host_block_alloc(bytes) (any thread).
void host_block_free(void* p, size_t bytes) noexcept;

}  // namespace nm::napi
