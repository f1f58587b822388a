// Dense SwiGLU feed-forward tensors: down(silu(gate·x) ⊙ up·x), gate / up
// [I, d], down [d, I] (shared/REFERENCE.md 7(a), 7(b)).
// Stored: Jamba `model.layers.i.feed_forward.{gate,up,down}_proj.weight`;
// Granite with num_local_experts 0, the shared MLP: gate = rows [0, I) and
// up = rows [I, 2I) of `shared_mlp.input_linear.weight` [2I, d], down =
// `shared_mlp.output_linear.weight` [d, I]. llama.cpp ffn_gate / ffn_up / ffn_down.
import type { MambaConfig } from '../config';
import { need, type BlockDecl, type RowSlice } from './types';

const width = (c: MambaConfig) => need(c.mlpDim, 'mlpDim');

/** Rows [half·I, (half + 1)·I) of a packed [2I, d] tensor: gate (half 0), then up (half 1), as Granite packs them. */
export function packedGateUp(name: string, half: 0 | 1, I: (c: MambaConfig) => number): RowSlice {
  return {
    name,
    shape: (c) => [2 * I(c), c.dModel],
    rows: (c) => [half * I(c), I(c)],
    explain: (c, a) => (a.length === 2 && a[0] !== 2 * I(c) && a[0] % 2 === 0
      ? `its rows imply an intermediate width of ${a[0] / 2} (gate and up rows), the config gives ${I(c)}` : undefined),
  };
}

export const MLP: BlockDecl = {
  kind: 'mlp',
  tensors: [
    {
      role: 'ffn.gate_proj.weight', kind: 'matrix', shape: (c) => [width(c), c.dModel],
      stored: { jamba: 'feed_forward.gate_proj.weight', granitemoehybrid: packedGateUp('shared_mlp.input_linear.weight', 0, width) },
      gguf: { name: 'ffn_gate.weight' },
    },
    {
      role: 'ffn.up_proj.weight', kind: 'matrix', shape: (c) => [width(c), c.dModel],
      stored: { jamba: 'feed_forward.up_proj.weight', granitemoehybrid: packedGateUp('shared_mlp.input_linear.weight', 1, width) },
      gguf: { name: 'ffn_up.weight' },
    },
    {
      role: 'ffn.down_proj.weight', kind: 'matrix', shape: (c) => [c.dModel, width(c)],
      stored: { jamba: 'feed_forward.down_proj.weight', granitemoehybrid: 'shared_mlp.output_linear.weight' },
      explain: (c, a) => (a.length === 2 && a[1] !== width(c) ? `its columns imply an intermediate width of ${a[1]}, the config gives ${width(c)}` : undefined),
      gguf: { name: 'ffn_down.weight' },
    },
  ],
};
