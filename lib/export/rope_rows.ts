// llama.cpp's RoPE for its llama-family files (granitehybrid) rotates
// adjacent channel pairs (2i, 2i + 1) of a head, where Hugging Face's
// rotate_half rotates (i, i + r/2); its converter therefore stores attn_q /
// attn_k with each head's first r rows interleaved: row 2i + s of the file is
// row s·r/2 + i of the checkpoint (convert_hf_to_gguf's `permute`). The
// exporter writes that order; the engine reads such files as they are, with
// interleaved RoPE (kernels/attention.h RopeArgs::interleaved), which gives
// the same attention scores.

/** The checkpoint row the exporter writes at file row j (rows >= rotaryDim of a head stay). */
export function ropeCheckpointRow(j: number, headDim: number, rotaryDim: number): number {
  const h = Math.floor(j / headDim), r = j % headDim, half = rotaryDim / 2;
  if (r >= rotaryDim) return j;
  return h * headDim + (r % 2) * half + Math.floor(r / 2);
}
