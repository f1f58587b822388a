// qlinear: input preparation (quantize / pad once per call), level dispatch
// and threading over weight rows. Kernels: qlinear_impl.h.
#include "kernels/qlinear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/threadpool.h"
#include "kernels/linear.h"
#include "kernels/ggml_panels.h"
#include "kernels/qlinear_input.h"
#include "kernels/qlinear_levels.h"
#include "kernels/qlinear_rows.h"

namespace nm {

namespace {

bool wide_i8_for_level() {
  switch (cpu::active_isa()) {
#if defined(__x86_64__) || defined(_M_X64)
    case cpu::Isa::Avx512Vnni: return avx512vnni::qlinear_wide_i8();
    case cpu::Isa::Avx512: return avx512::qlinear_wide_i8();
    case cpu::Isa::Avx2: return avx2::qlinear_wide_i8();
#endif
    default: return scalar::qlinear_wide_i8();
  }
}

// W4A16's input layout at the active level: 0 rows; 1 lane order; 2 lane
// order, the tiles factoring the group scale out (they read QInput::xsum8).
int u4_lanes_for_level() {
  switch (cpu::active_isa()) {
#if defined(__x86_64__) || defined(_M_X64)
    case cpu::Isa::Avx512Vnni: return avx512vnni::qlinear_u4_lanes();
    case cpu::Isa::Avx512: return avx512::qlinear_u4_lanes();
    case cpu::Isa::Avx2: return avx2::qlinear_u4_lanes();
#endif
    default: return scalar::qlinear_u4_lanes();
  }
}

// The element of a 4-bit weight group at each position of its lane order.
struct U4LaneOrder {
  int16_t element[kI4Group];
  constexpr U4LaneOrder() : element{} {
    for (int p = 0; p < 8; ++p)
      for (int l = 0; l < kU4Lanes; ++l) element[p * kU4Lanes + l] = (int16_t)u4_lane_element(p, l);
  }
};
constexpr U4LaneOrder kU4LaneOrder;

// Rows of x in the lane order of 4-bit weight groups (QInput::xg): [M,
// groups · 128], 0 past K.
void inputs_in_lane_order(const QLinearArgs& a, int64_t groups, float* xg) {
  const int16_t* order = kU4LaneOrder.element;
  const int64_t xs = groups * kI4Group;
  for (int64_t m = 0; m < a.M; ++m) {
    const float* xr = linear_x_row(a.x, a.x_stride, a.x_rows, m);
    float* out = xg + m * xs;
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t k0 = g * kI4Group;
      if (k0 + kI4Group <= a.K) {
        for (int64_t i = 0; i < kI4Group; ++i) out[k0 + i] = xr[k0 + order[i]];
      } else {
        for (int64_t i = 0; i < kI4Group; ++i) out[k0 + i] = k0 + order[i] < a.K ? xr[k0 + order[i]] : 0.0f;
      }
    }
  }
}

bool quantize_row_for_level(const float* x, int64_t K, float inv, int8_t* q) {
  switch (cpu::active_isa()) {
#if defined(__x86_64__) || defined(_M_X64)
    case cpu::Isa::Avx512Vnni: return avx512vnni::qlinear_quantize_row(x, K, inv, q);
    case cpu::Isa::Avx512: return avx512::qlinear_quantize_row(x, K, inv, q);
    case cpu::Isa::Avx2: return avx2::qlinear_quantize_row(x, K, inv, q);
#endif
    default: return scalar::qlinear_quantize_row(x, K, inv, q);
  }
}

}  // namespace

void quantize_act_int8(const float* x, int64_t xs, int64_t M, int64_t K, float inv_scale, int8_t* q, int64_t qs) {
  // The portable row quantizer (a NaN becomes 0, as documented; the vector
  // levels' rows may hold any value for a NaN, which qlinear never reads).
  for (int64_t m = 0; m < M; ++m) scalar::qlinear_quantize_row(x + m * xs, K, inv_scale, q + m * qs);
}

void qweight_row_to_f32(const void* w, DType t, int64_t w_stride, const float* scales, int64_t row, int64_t K,
                        float* out, WeightLayout layout) {
  const bool panels = layout == WeightLayout::Panels;
  if ((t == DType::Q8_0 || t == DType::Q4_0) && panels) return ggml_panel_row_to_f32(t, w, K, row, out);
  if (t != DType::I8 && t != DType::I4)
    throw std::invalid_argument(std::string("node-mamba: qweight_row_to_f32: ") + dtype_name(t) +
                                " is not an I8 / I4 format (or Q8_0 / Q4_0 in panels)");
  // Byte j of the row: in place, or group j / 4 of its panel at the row's 4 bytes.
  const uint8_t* r = static_cast<const uint8_t*>(w) + (panels ? (row / kPanelRows) * kPanelRows * dtype_panel_row_bytes(t, K) +
                                                                    (row % kPanelRows) * kPanelK
                                                              : row * w_stride);
  const int64_t group_step = panels ? kPanelRows * kPanelK : kPanelK;
  auto byte = [&](int64_t j) { return r[(j / kPanelK) * group_step + j % kPanelK]; };
  if (t == DType::I8) {
    const float s = scales[row];
    for (int64_t k = 0; k < K; ++k) out[k] = (float)(int8_t)byte(k) * s;
  } else {
    // 64-element chunks of 32 bytes: byte j holds element j (low nibble) and j + 32 (high), stored q + 8.
    const int64_t G = (K + kI4Group - 1) / kI4Group;
    const float* s = panels ? scales + (row / kPanelRows) * G * kPanelRows + row % kPanelRows : scales + row * G;
    const int64_t s_step = panels ? kPanelRows : 1;
    for (int64_t k = 0; k < K; ++k) {
      const uint8_t b = byte((k / kI4Chunk) * (kI4Chunk / 2) + (k % kI4Chunk) % 32);
      const int q = ((k % kI4Chunk) < 32 ? (b & 0x0f) : (b >> 4)) - 8;
      out[k] = (float)q * s[(k / kI4Group) * s_step];
    }
  }
}

void qweight_pack_panels(const void* w, DType t, int64_t w_stride, const float* scales, int64_t N, int64_t K,
                         uint8_t* panels, float* panel_scales) {
  const DTypeInfo& f = dtype_info(t);
  if (!f.panels)
    throw std::invalid_argument(std::string("node-mamba: qweight_pack_panels: ") + f.name + " has no panel layout");
  if (f.scales == ScaleLayout::InBlock) return ggml_pack_panels(t, w, w_stride, N, K, panels);  // scales inside (panel_scales unused)
  const int64_t rb = dtype_row_bytes(t, K), prb = dtype_panel_row_bytes(t, K), P = dtype_panel_count(N);
  const int64_t groups = prb / kPanelK, whole = rb / kPanelK, vec = kPanelRows * kPanelK;
  const uint8_t pad = t == DType::I4 ? 0x88 : 0;  // padding rows: q = 0
  const uint8_t* src0 = static_cast<const uint8_t*>(w);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, kPanelRows * prb));
  cpu::parallel_for(P, grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      uint8_t* out = panels + p * kPanelRows * prb;
      for (int64_t r = 0; r < kPanelRows; ++r) {
        const int64_t n = p * kPanelRows + r;
        uint8_t* o = out + r * kPanelK;
        if (n >= N) {
          for (int64_t g = 0; g < groups; ++g) std::memset(o + g * vec, pad, kPanelK);
          continue;
        }
        const uint8_t* src = src0 + n * w_stride;
        for (int64_t g = 0; g < whole; ++g) std::memcpy(o + g * vec, src + g * kPanelK, kPanelK);
        if (whole < groups) {  // I8: the last K % 4 bytes, then zeros
          uint8_t last[kPanelK] = {0, 0, 0, 0};
          std::memcpy(last, src + whole * kPanelK, (size_t)(rb - whole * kPanelK));
          std::memcpy(o + whole * vec, last, kPanelK);
        }
      }
    }
  });
  if (f.scales == ScaleLayout::PerGroup) {
    const int64_t G = (K + f.group - 1) / f.group;
    for (int64_t p = 0; p < P; ++p)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t r = 0; r < kPanelRows; ++r) {
          const int64_t n = p * kPanelRows + r;
          panel_scales[(p * G + g) * kPanelRows + r] = n < N ? scales[n * G + g] : 0.0f;
        }
  } else {
    std::copy(scales, scales + dtype_scale_count(t, N, K), panel_scales);
  }
}

void qlinear(const QLinearArgs& a) {
  const DTypeInfo& f = dtype_info(a.w_dtype);
  if (f.linear != LinearKernel::Quamba)
    throw std::invalid_argument(std::string("node-mamba: qlinear: weight format ") + f.name +
                                " is read by linear, not qlinear");
  const bool int8_in = a.x_scale > 0.0f;
  if (!int8_in && a.w_dtype == DType::I8)
    throw std::invalid_argument("node-mamba: qlinear: i8 weights need int8 inputs (x_scale > 0)");
  const bool packed = a.w_layout == WeightLayout::Panels;
  if (packed && !int8_in)
    throw std::invalid_argument("node-mamba: qlinear: the panel layout needs int8 inputs (x_scale > 0)");
  if (a.w_layout != WeightLayout::Rows && !packed)
    throw std::invalid_argument("node-mamba: qlinear: unknown weight layout " + std::to_string((int32_t)a.w_layout));
  if (a.M <= 0 || a.N <= 0) return;

  thread_local std::vector<char> qbuf, sbuf, fbuf, wbuf;
  QInput in;
  in.Kp = (a.K + 63) / 64 * 64;
  in.groups = (a.K + kI4Group - 1) / kI4Group;
  in.stream = a.M <= kQLinearStreamRows;
  if (int8_in) {
    int8_t* q = scratch<int8_t>(qbuf, a.M * in.Kp);
    const int64_t G = std::max<int64_t>(in.groups, 1);
    int32_t* sums = scratch<int32_t>(sbuf, a.M * (G + 1) + (a.M + 3) / 4);
    int32_t* gsum = sums, *rowsum = sums + a.M * G;
    uint8_t* nan_row = reinterpret_cast<uint8_t*>(rowsum + a.M);
    const float inv = 1.0f / a.x_scale;
    // At prefill the inputs go through the level's int16 tile: widened here, once.
    int16_t* q16 = a.w_dtype == DType::I8 && !in.stream && wide_i8_for_level() ? scratch<int16_t>(wbuf, a.M * in.Kp)
                                                                               : nullptr;
    // Each input row: quantized (or copied), padded, its group and row sums,
    // widened for the int16 tile; rows in parallel at prefill sizes.
    auto prepare_rows = [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) {
        int8_t* qr = q + m * in.Kp;
        if (a.xq) std::copy(a.xq + m * a.xq_stride, a.xq + m * a.xq_stride + a.K, qr);
        nan_row[m] = a.xq ? 0 : quantize_row_for_level(linear_x_row(a.x, a.x_stride, a.x_rows, m), a.K, inv, qr) ? 1 : 0;
        std::fill(qr + a.K, qr + in.Kp, (int8_t)0);
        int32_t total = 0;
        for (int64_t g = 0; g < in.groups; ++g) {
          const int64_t k1 = std::min(a.K, (g + 1) * kI4Group);
          int32_t s = 0;
          for (int64_t k = g * kI4Group; k < k1; ++k) s += qr[k];
          gsum[m * G + g] = s;
          total += s;
        }
        rowsum[m] = total;
        if (q16) std::copy(qr, qr + in.Kp, q16 + m * in.Kp);
      }
    };
    if (in.stream) prepare_rows(0, a.M);
    else cpu::parallel_for(a.M, std::max<int64_t>(1, (int64_t(1) << 14) / in.Kp), prepare_rows);
    in.q = q; in.gsum = gsum; in.rowsum = rowsum; in.nan_row = nan_row;
    in.q16 = q16;
  } else if (const int lanes = u4_lanes_for_level()) {
    float* xg = scratch<float>(fbuf, a.M * in.groups * kI4Group);
    inputs_in_lane_order(a, in.groups, xg);
    in.xg = xg;
    float* xs8 = lanes == 2 ? scratch<float>(sbuf, a.M * in.groups * 8) : nullptr;
    for (int64_t m = 0; xs8 && m < a.M; ++m)
      for (int64_t g = 0; g < in.groups; ++g) {
        const float* x = xg + (m * in.groups + g) * kI4Group;
        for (int l = 0; l < 8; ++l) {
          float sum = 0.0f;
          for (int p = 0; p < 8; ++p)
            for (int h = 0; h < 2; ++h) sum += x[p * kU4Lanes + h * 8 + l];
          xs8[(m * in.groups + g) * 8 + l] = sum;
        }
      }
    in.xsum8 = xs8;
    if (a.M == 8) {
      float* xi = scratch<float>(wbuf, 8 * in.groups * kI4Group);
      for (int64_t g = 0; g < in.groups; ++g)
        for (int p = 0; p < 8; ++p)
          for (int m = 0; m < 8; ++m)
            std::copy_n(xg + m * in.groups * kI4Group + g * kI4Group + p * kU4Lanes, kU4Lanes,
                        xi + ((g * 8 + p) * 8 + m) * kU4Lanes);
      in.xi = xi;
    }
  } else {
    float* xf = scratch<float>(fbuf, a.M * in.Kp);
    for (int64_t m = 0; m < a.M; ++m) {
      const float* xr = linear_x_row(a.x, a.x_stride, a.x_rows, m);
      std::copy(xr, xr + a.K, xf + m * in.Kp);
      std::fill(xf + m * in.Kp + a.K, xf + (m + 1) * in.Kp, 0.0f);
    }
    in.xf = xf;
  }

  // Units of 4 weight rows (every level's tile height divides 4), or of 16
  // on the panel path (every level's panel height divides 16); a task should
  // read at least ~16K weights or do ~64K products.
  const bool panel = packed || (int8_in && qlinear_panel_path(a.w_dtype == DType::I8, a.M));
  const int64_t unit = panel ? 16 : 4, units = (a.N + unit - 1) / unit;
  const int64_t per_unit = unit * std::max<int64_t>(a.K, 1) * std::max<int64_t>(a.M, 1);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / per_unit);
  // Each task's scratch, reused across calls: the batched 4-bit paths'
  // (kQLinearUnpackRows rows of groups · 128 floats) or the panel path's.
  // (packed weights need none).
  const bool unpack = !packed && a.w_dtype == DType::I4 && a.M > 1;  // the levels unpack above their tile height (>= 1)
  const bool need_scratch = unpack || (panel && !packed);
  const int64_t scratch_bytes =
      std::max(unpack ? kQLinearUnpackRows * in.groups * kI4Group * (int64_t)sizeof(float) : 0,  // >= Kp floats
               panel && !packed ? kQLinearPanelRows * (in.Kp + in.groups * (int64_t)sizeof(float)) : 0);
  // Decode-sized calls (few input rows) are scheduled guided: long ranges of
  // weight rows first, short ones at the end (at least `grain`; each range
  // starts new streams for the hardware prefetcher, so not shorter), and the
  // threads finish within one short range of each other. At one input row a
  // packed micro-tile is one packed panel (qlinear_packed.h); at 2-8 rows,
  // packed panels go in whole micro-tiles of 4 where there are at least 8 (a
  // range of 3 left a third of out_proj's panels to one-panel tiles, each of
  // which reloads every input broadcast; with fewer, ranges of 4 left one
  // thread 4 of x_proj's 5 panels and the other 1). Prefill-sized calls take dynamic
  // chunks (cpu::balanced_chunk): a share per thread waited for whichever
  // thread the machine slowed (bench/NOTES.md).
  const int64_t align = packed && units >= 8 ? 4 : 1;
  const int64_t rows_scratch = need_scratch ? scratch_bytes : -1;
  if (a.M <= 8) return run_qlinear_rows(a, in, unit, cpu::guided_ranges(units, grain, align), rows_scratch);
  int64_t chunk = cpu::balanced_chunk(units, grain);
  if (chunk > 1) chunk = std::min(units, (chunk + align - 1) / align * align);
  run_qlinear_rows(a, in, unit, cpu::dynamic_ranges(units, chunk), rows_scratch);
}

}  // namespace nm
