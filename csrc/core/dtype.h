// Element types the kernels read, and scalar conversions between them.
// Functions are `static inline` so that a copy compiled with AVX-512 flags in
// one translation unit can never be picked by the linker for another.
// Compute is always float32; float16 / bfloat16 appear only as storage for
// weights (and, where a kernel says so, inputs).
#pragma once
#include <cstdint>
#include <cstring>

namespace nm {

// The weight formats, as one table (kDTypeTable below): each format declares
// how a row of K elements is stored (blocks of block_elems elements in
// block_bytes bytes), where its scales live and which kernels read it. Every
// lookup of a value outside the table throws (dtype_info); no switch falls
// through to a default format.
//
// F32 / F16 / BF16: one value per element.
// Q8_0 / Q4_0: ggml's block formats (little-endian), blocks of kQuantBlock =
// 32 consecutive elements along a row, so a quantized row's length must be a
// multiple of 32; the scale is inside the block:
//   Q8_0 block (34 bytes): fp16 scale d, then 32 int8 q;  value j = d * q[j]
//   Q4_0 block (18 bytes): fp16 scale d, then 16 bytes qs: byte j holds
//     element j in its low nibble and element j + 16 in its high nibble;
//     value = d * (nibble - 8)
// d * q is exact in float32 (an 11-bit significand times an integer of at
// most 8 bits), so dequantised values are exact.
// I8 / I4: the Quamba-style formats (kernels/qlinear.h), whose scales are a
// separate float32 tensor:
//   I8  one int8 q per element (symmetric, -127..127); one scale per row:
//       value = scale[row] * q.
//   I4  4-bit, in chunks of kI4Chunk = 64 elements stored in 32 bytes: byte j
//       of a chunk holds element j in its low nibble and element j + 32 in
//       its high nibble, each as q + 8 (q in -8..7). A row of K elements
//       takes ceil(K / 64) chunks; nibbles past K hold 8 (q = 0). One scale
//       per group of kI4Group = 128 elements along the row (the last group
//       of a row may be shorter): scales [rows, ceil(K / 128)],
//       value = scale[row, k / 128] * q.
//
// I8 / I4 also have a panel layout (WeightLayout::Panels), into which the
// engine packs the weights of its int8-input linear layers once at load
// (kernels/qlinear.h qweight_pack_panels); qlinear reads either layout.
// Rows are grouped kPanelRows = 16 at a time (the last group padded with
// zero rows); each panel stores its rows' bytes kPanelK = 4 at a time, the
// 4-byte groups of its 16 rows side by side:
//   panel p, group g, row r (0..15), byte b (0..3) = byte 4g + b of row 16p + r
// so that one 64-byte vector holds 4 consecutive bytes of 16 rows. A row is
// the format's own row (I8: K int8 padded with zeros to ceil(K / 4) · 4
// bytes; I4: its ceil(K / 64) chunks of 32 bytes, so group g of chunk c = g / 8
// holds elements 64c + 4(g % 8) + b in its low and 64c + 32 + 4(g % 8) + b in
// its high nibbles). The layout does not depend on the ISA level. I8 scales
// stay [rows]; I4 scales are reordered per panel: [panels, groups, 16].
//
// Q8_0 and Q4_0 have panel layouts of their own (scales inside, as in their
// blocks), for linear layers whose inputs are rounded as ggml's Q8_0
// (linear.h ActRounding::Q8Block): the engine packs them at load and the
// int8 dot products read them (kernels/ggml_panels.h). A panel of 16 rows
// holds K / 32 blocks of 16 · block_bytes bytes (Q8_0 544, Q4_0 288), block
// b at b times that; a block holds its rows' quant bytes in groups of 4,
// then the 16 rows' fp16 scales d (row r at Q + 2r):
//   Q8_0  Q = 512: 8 groups of 64 bytes, group g = the int8 q of elements
//         32b + 4g .. 4g+3 of rows 0..15 side by side
//   Q4_0  Q = 256: 4 groups of 64 bytes, group g = bytes 4g..4g+3 of the
//         rows' qs (low nibbles: elements 32b + 4g ..; high: 32b + 16 + 4g ..)
// (padding rows: zero bytes, d = 0), so a panel is exactly 16 rows' bytes.
enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2, Q8_0 = 3, Q4_0 = 4, I8 = 5, I4 = 6 };

constexpr int64_t kQuantBlock = 32;
constexpr int64_t kI4Chunk = 64;
constexpr int64_t kI4Group = 128;

// Where a format's scales are.
enum class ScaleLayout : int32_t {
  None = 0,      // plain values (F32 / F16 / BF16)
  InBlock = 1,   // fp16 scale at the start of each block (Q8_0 / Q4_0)
  PerRow = 2,    // separate float32 tensor [rows] (I8)
  PerGroup = 3,  // separate float32 tensor [rows, ceil(cols / group)] (I4)
};

// How a weight's rows are laid out in memory (see above: Panels exists for
// the formats whose table row says `panels`).
enum class WeightLayout : int32_t {
  Rows = 0,    // the stored format: one row after another
  Panels = 1,  // kPanelRows rows interleaved kPanelK bytes at a time
};
constexpr int64_t kPanelRows = 16;
constexpr int64_t kPanelK = 4;

// Which linear kernel family reads a format as weights.
enum class LinearKernel : int32_t {
  Float = 0,   // kernels/linear.h: f32 / f16 / bf16 / ggml blocks
  Quamba = 1,  // kernels/qlinear.h: I8 / I4 with int8 or float32 activations
};

struct DTypeInfo {
  DType type;
  const char* name;
  int64_t block_elems;  // elements per storage block along a row
  int64_t block_bytes;  // bytes per storage block
  ScaleLayout scales;
  int64_t group;        // elements per scale (PerGroup); 0 otherwise
  LinearKernel linear;
  bool plain_float;     // F32 / F16 / BF16: usable for any tensor (norms, conv, biases)
  bool panels;          // has the Panels layout (I8 / I4 / Q8_0 / Q4_0)
};

constexpr DTypeInfo kDTypeTable[] = {
    {DType::F32, "f32", 1, 4, ScaleLayout::None, 0, LinearKernel::Float, true, false},
    {DType::F16, "f16", 1, 2, ScaleLayout::None, 0, LinearKernel::Float, true, false},
    {DType::BF16, "bf16", 1, 2, ScaleLayout::None, 0, LinearKernel::Float, true, false},
    {DType::Q8_0, "q8_0", kQuantBlock, 2 + 32, ScaleLayout::InBlock, 0, LinearKernel::Float, false, true},
    {DType::Q4_0, "q4_0", kQuantBlock, 2 + 16, ScaleLayout::InBlock, 0, LinearKernel::Float, false, true},
    {DType::I8, "i8", 1, 1, ScaleLayout::PerRow, 0, LinearKernel::Quamba, false, true},
    {DType::I4, "i4", kI4Chunk, kI4Chunk / 2, ScaleLayout::PerGroup, kI4Group, LinearKernel::Quamba, false, true},
};
constexpr int32_t kDTypeCount = (int32_t)(sizeof(kDTypeTable) / sizeof(kDTypeTable[0]));

constexpr bool dtype_table_in_order() {
  for (int32_t i = 0; i < kDTypeCount; ++i)
    if ((int32_t)kDTypeTable[i].type != i) return false;
  return true;
}
static_assert(dtype_table_in_order(), "kDTypeTable rows must be in DType order");

// Throws std::invalid_argument naming the numeric id.
[[noreturn]] void throw_unknown_dtype(DType t);

// The table entry of t; throws std::invalid_argument for a value outside the
// table (a corrupt or future format id), never a silent default.
static inline const DTypeInfo& dtype_info(DType t) {
  const int32_t i = (int32_t)t;
  if (i < 0 || i >= kDTypeCount) throw_unknown_dtype(t);
  return kDTypeTable[i];
}
// The format named `name` ("f32", "q8_0", "i4", ...); false if none is.
bool dtype_from_name(const char* name, DType* out);

// ggml block formats (scale inside 32-element blocks).
static inline bool dtype_is_quantized(DType t) { return dtype_info(t).scales == ScaleLayout::InBlock; }
// Elements per block: 32 for the ggml block types, 64 for I4, 1 otherwise.
static inline int64_t dtype_block_elems(DType t) { return dtype_info(t).block_elems; }
// Bytes per block (per element for F32 / F16 / BF16 / I8).
static inline int64_t dtype_block_bytes(DType t) { return dtype_info(t).block_bytes; }
// Bytes of n consecutive elements of a row. For the ggml block types n must
// be a multiple of kQuantBlock (callers check; a remainder is not counted);
// for I4 a partial last chunk counts as a whole chunk (rows are padded).
static inline int64_t dtype_row_bytes(DType t, int64_t n) {
  const DTypeInfo& f = dtype_info(t);
  if (f.scales == ScaleLayout::InBlock) return n / f.block_elems * f.block_bytes;
  return (n + f.block_elems - 1) / f.block_elems * f.block_bytes;
}
// Bytes per element of the plain float types (0 for the others: use
// dtype_row_bytes).
static inline int64_t dtype_size(DType t) {
  const DTypeInfo& f = dtype_info(t);
  return f.plain_float ? f.block_bytes : 0;
}
static inline const char* dtype_name(DType t) { return dtype_info(t).name; }
// Scale elements of a [rows, cols] weight of type t (0: no separate scales).
static inline int64_t dtype_scale_count(DType t, int64_t rows, int64_t cols) {
  const DTypeInfo& f = dtype_info(t);
  if (f.scales == ScaleLayout::PerRow) return rows;
  if (f.scales == ScaleLayout::PerGroup) return rows * ((cols + f.group - 1) / f.group);
  return 0;
}

// The Panels layout of a [rows, cols] weight of type t (a format whose table
// row says `panels`): bytes of one panel (kPanelRows rows), the panel
// count, and the scale elements (I4: [panels, groups, kPanelRows]).
static inline int64_t dtype_panel_row_bytes(DType t, int64_t cols) {
  if (dtype_info(t).scales == ScaleLayout::InBlock) return dtype_row_bytes(t, cols);  // Q8_0 / Q4_0: whole blocks
  return (dtype_row_bytes(t, cols) + kPanelK - 1) / kPanelK * kPanelK;
}
static inline int64_t dtype_panel_count(int64_t rows) { return (rows + kPanelRows - 1) / kPanelRows; }
static inline int64_t dtype_panel_bytes(DType t, int64_t rows, int64_t cols) {
  return dtype_panel_count(rows) * kPanelRows * dtype_panel_row_bytes(t, cols);
}
// Bytes of a [rows, cols] weight of type t in `layout` (rows as stored, or panels).
static inline int64_t dtype_layout_bytes(DType t, WeightLayout layout, int64_t rows, int64_t cols) {
  return layout == WeightLayout::Panels ? dtype_panel_bytes(t, rows, cols) : rows * dtype_row_bytes(t, cols);
}
static inline int64_t dtype_panel_scale_count(DType t, int64_t rows, int64_t cols) {
  const DTypeInfo& f = dtype_info(t);
  if (f.scales == ScaleLayout::PerGroup) return dtype_panel_count(rows) * kPanelRows * ((cols + f.group - 1) / f.group);
  return dtype_scale_count(t, rows, cols);
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

// Throws std::invalid_argument naming t (a format that load_as_f32 /
// load_row_as_f32 cannot read without its scale tensor).
[[noreturn]] void throw_unreadable_dtype(DType t);

// Read element i of a buffer of the given dtype as float32 (for the
// quantized types i counts elements from the start of a block-aligned run).
static inline float load_as_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::Q8_0:
    case DType::Q4_0: {
      const uint8_t* blk = static_cast<const uint8_t*>(p) + (i / kQuantBlock) * dtype_block_bytes(t);
      return quant_block_value(blk, t, i % kQuantBlock);
    }
    default: break;
  }
  // I8 / I4 values need their separate scales: not readable element-wise.
  throw_unreadable_dtype(t);
}

// out[0:n] = elements [i0, i0 + n) of a buffer of the given dtype, as
// float32. For the quantized types i0 and n must be multiples of kQuantBlock.
static inline void load_row_as_f32(const void* p, DType t, int64_t i0, int64_t n, float* out) {
  if (t == DType::F32) {
    std::memcpy(out, static_cast<const float*>(p) + i0, (size_t)n * 4);
  } else if (dtype_info(t).plain_float) {
    for (int64_t j = 0; j < n; ++j) out[j] = load_as_f32(p, t, i0 + j);
  } else if (!dtype_is_quantized(t)) {
    throw_unreadable_dtype(t);
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
