// ggml block panels (Q8_0, Q4_0): packing, the inputs' block quantization
// and the threading over weight rows; the per-level tiles are
// qlinear_packed.h's packed_tile_q8_0 / packed_tile_q4_0.
#include "kernels/ggml_panels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "kernels/qlinear.h"
#include "kernels/qlinear_input.h"
#include "kernels/qlinear_levels.h"
#include "kernels/qlinear_rows.h"

namespace nm {

namespace {

// Bytes of a block's quants in a panel: 16 rows x 32 (Q8_0) or 16 (Q4_0) bytes.
inline int64_t quant_bytes(DType t) { return kPanelRows * (dtype_block_bytes(t) - 2); }

// Byte j of a block's quants of panel row r (Q8_0: element j; Q4_0: elements
// j and j + 16), within the block: its group of 4, then the row's 4 bytes.
inline int64_t q_offset(int64_t r, int64_t j) { return (j / kPanelK) * (kPanelRows * kPanelK) + r * kPanelK + j % kPanelK; }

void check_format(DType t, const char* fn) {
  if (t != DType::Q8_0 && t != DType::Q4_0)
    throw std::invalid_argument(std::string("node-mamba: ") + fn + ": " + dtype_name(t) + " has no ggml block panels");
}

}  // namespace

int64_t ggml_panel_block_bytes(DType t) {
  check_format(t, "ggml_panel_block_bytes");
  return kPanelRows * dtype_block_bytes(t);
}

bool ggml_packable(DType t, const void* w, int64_t w_stride, int64_t N, int64_t K) {
  check_format(t, "ggml_packable");
  if (t == DType::Q4_0) return true;
  const int64_t nb = K / kQuantBlock;
  for (int64_t n = 0; n < N; ++n) {
    const uint8_t* row = static_cast<const uint8_t*>(w) + n * w_stride;
    uint8_t found = 0;  // (no early exit within a row: the loop vectorizes)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* qs = row + b * (2 + kQuantBlock) + 2;
      for (int64_t j = 0; j < kQuantBlock; ++j) found |= (uint8_t)(qs[j] == 0x80);
    }
    if (found) return false;
  }
  return true;
}

void ggml_pack_panels(DType t, const void* w, int64_t w_stride, int64_t N, int64_t K, uint8_t* out) {
  check_format(t, "ggml_pack_panels");
  if (K % kQuantBlock != 0)
    throw std::invalid_argument("node-mamba: ggml_pack_panels: K = " + std::to_string(K) + " is not a multiple of 32");
  const int64_t nb = K / kQuantBlock, P = dtype_panel_count(N), bb = ggml_panel_block_bytes(t), pbytes = nb * bb;
  const int64_t qb = dtype_block_bytes(t) - 2, qbytes = quant_bytes(t);
  const uint8_t* src0 = static_cast<const uint8_t*>(w);
  cpu::parallel_for(P, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, pbytes)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      uint8_t* panel = out + p * pbytes;
      std::memset(panel, 0, (size_t)pbytes);  // padding rows: q = 0 (Q4_0: nibbles 0, d = 0 all the same), d = 0
      for (int64_t r = 0; r < kPanelRows && p * kPanelRows + r < N; ++r) {
        const uint8_t* row = src0 + (p * kPanelRows + r) * w_stride;
        for (int64_t b = 0; b < nb; ++b) {
          const uint8_t* blk = row + b * (2 + qb);
          uint8_t* o = panel + b * bb;
          std::memcpy(o + qbytes + 2 * r, blk, 2);
          for (int64_t g = 0; g < qb / kPanelK; ++g) std::memcpy(o + q_offset(r, g * kPanelK), blk + 2 + g * kPanelK, kPanelK);
        }
      }
    }
  });
}

void ggml_panel_row_to_f32(DType t, const void* panels, int64_t K, int64_t row, float* out) {
  check_format(t, "ggml_panel_row_to_f32");
  const int64_t nb = K / kQuantBlock, r = row % kPanelRows, bb = ggml_panel_block_bytes(t), qbytes = quant_bytes(t);
  const uint8_t* panel = static_cast<const uint8_t*>(panels) + (row / kPanelRows) * nb * bb;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = panel + b * bb;
    uint16_t h;
    std::memcpy(&h, blk + qbytes + 2 * r, 2);
    const float d = f16_to_f32(h);
    float* o = out + b * kQuantBlock;
    if (t == DType::Q8_0) {
      for (int64_t j = 0; j < kQuantBlock; ++j) o[j] = d * (float)(int8_t)blk[q_offset(r, j)];
    } else {
      for (int64_t j = 0; j < kQuantBlock / 2; ++j) {
        const uint8_t v = blk[q_offset(r, j)];
        o[j] = d * (float)((v & 0x0f) - 8);
        o[j + 16] = d * (float)((v >> 4) - 8);
      }
    }
  }
}

void linear_ggml_panels(const LinearArgs& a) {
  if (a.w_layout != WeightLayout::Panels || (a.w_dtype != DType::Q8_0 && a.w_dtype != DType::Q4_0))
    throw std::invalid_argument("node-mamba: linear_ggml_panels: the weight is not Q8_0 / Q4_0 in panels");
  if (a.x_rounding != ActRounding::Q8Block)
    throw std::invalid_argument("node-mamba: linear: Q8_0 / Q4_0 weights in panels need Q8Block input rounding");
  if (a.K % kQuantBlock != 0)
    throw std::invalid_argument("node-mamba: linear: Q8_0 / Q4_0 weights need K a multiple of 32, got " + std::to_string(a.K));
  if (a.M <= 0 || a.N <= 0) return;
  const int64_t nb = a.K / kQuantBlock;
  thread_local std::vector<char> qbuf, dbuf, sbuf;
  int8_t* q = scratch<int8_t>(qbuf, a.M * std::max<int64_t>(a.K, 1));
  float* d = scratch<float>(dbuf, a.M * std::max<int64_t>(nb, 1));
  int32_t* sum = scratch<int32_t>(sbuf, a.M * std::max<int64_t>(nb, 1));
  // Rows are quantized in parallel only where there are many (prefill).
  cpu::parallel_for(a.M, std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, a.K)), [&](int64_t m0, int64_t m1) {
    q8_block_quantize_rows_for_level(a.x, a.x_stride, a.x_rows, m0, m1, a.K, q, d, sum);
  });
  QInput in;
  in.Kp = a.K;
  in.q = q;
  in.q8_scale = d;
  in.q8_sum = sum;
  in.stream = a.M <= kQLinearStreamRows;
  QLinearArgs qa;
  qa.M = a.M; qa.N = a.N; qa.K = a.K;
  qa.w = a.w; qa.w_dtype = a.w_dtype; qa.w_layout = WeightLayout::Panels;
  qa.bias = a.bias; qa.bias_dtype = a.bias_dtype;
  qa.y = a.y; qa.y_stride = a.y_stride;
  // As qlinear's packed panels: units of one packed panel; decode-sized
  // calls guided (long ranges first, short ones at the end, in whole
  // micro-tiles of 4 panels: the threads finish within a short range of each
  // other, and a range still held when the caller runs out is one a stalled
  // worker holds, not merely the last of equal shares; bench/NOTES.md),
  // prefill one contiguous share per thread.
  const int64_t unit = kPanelRows, units = (a.N + unit - 1) / unit;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / (unit * a.K * a.M));
  if (a.M <= 8) return run_qlinear_rows(qa, in, unit, cpu::guided_ranges(units, grain, units >= 4 ? 4 : 1), -1);
  const int64_t nth = cpu::pool().size();
  int64_t chunk = std::max(grain, (units + nth - 1) / nth);
  if (chunk > 1) chunk = std::min(units, (chunk + 3) / 4 * 4);
  run_qlinear_rows(qa, in, unit, cpu::dynamic_ranges(units, chunk), -1);
}

}  // namespace nm
