// Element types the kernels read, and scalar conversions between them.
// Functions are `static inline` so that a copy compiled with AVX-512 flags in
// one translation unit can never be picked by the linker for another.
// Compute is always float32; float16 / bfloat16 appear only as storage for
// weights (and, where a kernel says so, inputs).
#pragma once
#include <cstdint>
#include <cstring>

namespace nm {

// F32 / F16 / BF16: one value per element. Q8_0 / Q4_0: ggml's block
// formats (little-endian), blocks of kQuantBlock = 32 consecutive elements
// along a row, so a quantized row's length must be a multiple of 32:
//   Q8_0 block (34 bytes): fp16 scale d, then 32 int8 q;  value j = d * q[j]
//   Q4_0 block (18 bytes): fp16 scale d, then 16 bytes qs: byte j holds
//     element j in its low nibble and element j + 16 in its high nibble;
//     value = d * (nibble - 8)
// d * q is exact in float32 (an 11-bit significand times an integer of at
// most 8 bits), so dequantised values are exact.
enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2, Q8_0 = 3, Q4_0 = 4 };

constexpr int64_t kQuantBlock = 32;

static inline bool dtype_is_quantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }
// Elements per block: 32 for the quantized types, 1 otherwise.
static inline int64_t dtype_block_elems(DType t) { return dtype_is_quantized(t) ? kQuantBlock : 1; }
// Bytes per block (per element for F32 / F16 / BF16).
static inline int64_t dtype_block_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::Q8_0: return 2 + 32;
    case DType::Q4_0: return 2 + 16;
    default: return 2;
  }
}
// Bytes of n consecutive elements of a row. For the quantized types n must
// be a multiple of kQuantBlock (callers check; a remainder is not counted).
static inline int64_t dtype_row_bytes(DType t, int64_t n) {
  return n / dtype_block_elems(t) * dtype_block_bytes(t);
}
// Bytes per element of the unquantized types (0 for the block types: use
// dtype_row_bytes).
static inline int64_t dtype_size(DType t) {
  return dtype_is_quantized(t) ? 0 : t == DType::F32 ? 4 : 2;
}
static inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::Q8_0: return "q8_0";
    case DType::Q4_0: return "q4_0";
  }
  return "?";
}

// IEEE 754 binary16 -> binary32, exact (handles subnormals, inf, NaN).
static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do { man <<= 1; ++e; } while ((man & 0x400) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// binary32 -> binary16, round to nearest even.
static inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // overflow -> inf
  if (absx < 0x38800000u) {                                   // subnormal or zero
    if (absx < 0x33000000u) return (uint16_t)sign;
    uint32_t man = (absx & 0x7fffff) | 0x800000;
    int shift = 126 - (int)(absx >> 23);  // 14..24
    uint32_t res = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (res & 1))) ++res;
    return (uint16_t)(sign | res);
  }
  uint32_t res = ((absx >> 13) - ((127 - 15) << 10));
  uint32_t rem = absx & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (res & 1))) ++res;
  return (uint16_t)(sign | res);
}

static inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// binary32 -> bfloat16, round to nearest even (NaN stays NaN).
static inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

// Element j (< 32) of the quantized block at `blk`, as float32 (exact).
static inline float quant_block_value(const uint8_t* blk, DType t, int64_t j) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  const float d = f16_to_f32(h);
  if (t == DType::Q8_0) return d * (float)(int8_t)blk[2 + j];
  const uint8_t b = blk[2 + (j & 15)];
  return d * (float)((j < 16 ? (b & 0x0f) : (b >> 4)) - 8);
}

// Read element i of a buffer of the given dtype as float32 (for the
// quantized types i counts elements from the start of a block-aligned run).
static inline float load_as_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: {
      const uint8_t* blk = static_cast<const uint8_t*>(p) + (i / kQuantBlock) * dtype_block_bytes(t);
      return quant_block_value(blk, t, i % kQuantBlock);
    }
  }
}

// out[0:n] = elements [i0, i0 + n) of a buffer of the given dtype, as
// float32. For the quantized types i0 and n must be multiples of kQuantBlock.
static inline void load_row_as_f32(const void* p, DType t, int64_t i0, int64_t n, float* out) {
  if (t == DType::F32) {
    std::memcpy(out, static_cast<const float*>(p) + i0, (size_t)n * 4);
  } else if (!dtype_is_quantized(t)) {
    for (int64_t j = 0; j < n; ++j) out[j] = load_as_f32(p, t, i0 + j);
  } else {
    const uint8_t* blk = static_cast<const uint8_t*>(p) + dtype_row_bytes(t, i0);
    const int64_t bb = dtype_block_bytes(t);
    for (int64_t b = 0; b < n / kQuantBlock; ++b, blk += bb) {
      uint16_t h;
      std::memcpy(&h, blk, 2);
      const float d = f16_to_f32(h);
      float* o = out + b * kQuantBlock;
      if (t == DType::Q8_0) {
        for (int j = 0; j < 32; ++j) o[j] = d * (float)(int8_t)blk[2 + j];
      } else {
        for (int j = 0; j < 16; ++j) {
          o[j] = d * (float)((blk[2 + j] & 0x0f) - 8);
          o[j + 16] = d * (float)((blk[2 + j] >> 4) - 8);
        }
      }
    }
  }
}

}  // namespace nm
