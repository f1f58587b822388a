// Mixture-of-experts feed-forward tensors (shared/REFERENCE.md 7(a), 7(b),
// 7(d)): router [E, d]; per expert e gate / up [Ie, d] and down [d, Ie]; a
// shared expert (Granite) gate / up [Is, d], down [d, Is].
// Stored:
// - Jamba `model.layers.i.feed_forward.router.weight` and
//   `feed_forward.experts.{e}.{gate,up,down}_proj.weight`, one to one;
// - Granite `block_sparse_moe.router.layer.weight`; every expert packed in
//   `block_sparse_moe.input_linear.weight` [E, 2Ie, d] (expert e's gate rows
//   [0, Ie), up rows [Ie, 2Ie)) and `output_linear.weight` [E, d, Ie]; the
//   shared expert in `shared_mlp.input_linear.weight` [2Is, d] (gate, then up)
//   and `shared_mlp.output_linear.weight` [d, Is].
// llama.cpp: ffn_gate_inp, ffn_{gate,up,down}_exps (all experts in one tensor),
// ffn_{gate,up,down}_shexp.
import type { MambaConfig } from '../config';
import { packedGateUp } from './mlp';
import { need, type BlockDecl, type RowSlice } from './types';

const moe = (c: MambaConfig) => need(c.moe, 'moe');
const E = (c: MambaConfig) => moe(c).experts;
const Ie = (c: MambaConfig) => moe(c).dim;
const Is = (c: MambaConfig) => moe(c).sharedDim;

/** Expert e's gate (half 0) or up (half 1) rows of the packed [E, 2Ie, d] input_linear. */
function packedExpertGateUp(half: 0 | 1): RowSlice {
  return {
    name: 'block_sparse_moe.input_linear.weight',
    shape: (c) => [E(c), 2 * Ie(c), c.dModel],
    rows: (c, e) => [(2 * e + half) * Ie(c), Ie(c)],
    explain: (c, a) => (a.length === 3 && (a[0] !== E(c) || a[1] !== 2 * Ie(c))
      ? `it holds ${a[0]} experts of ${a[1] / 2} gate and up rows, the config gives ${E(c)} (num_local_experts) of ${Ie(c)} (intermediate_size)` : undefined),
  };
}

/** Expert e's [d, Ie] of the packed [E, d, Ie] output_linear. */
const packedExpertDown: RowSlice = {
  name: 'block_sparse_moe.output_linear.weight',
  shape: (c) => [E(c), c.dModel, Ie(c)],
  rows: (c, e) => [e * c.dModel, c.dModel],
  explain: (c, a) => (a.length === 3 && (a[0] !== E(c) || a[2] !== Ie(c))
    ? `it holds ${a[0]} experts of width ${a[2]}, the config gives ${E(c)} (num_local_experts) of ${Ie(c)} (intermediate_size)` : undefined),
};

const hasShared = (c: MambaConfig) => moe(c).sharedDim > 0;

export const MOE: BlockDecl = {
  kind: 'moe',
  tensors: [
    {
      role: 'ffn.router.weight', kind: 'matrix', shape: (c) => [E(c), c.dModel],
      stored: { jamba: 'feed_forward.router.weight', granitemoehybrid: 'block_sparse_moe.router.layer.weight' },
      explain: (c, a) => (a.length === 2 && a[0] !== E(c) ? `its rows imply ${a[0]} experts, the config gives ${E(c)}` : undefined),
      gguf: { name: 'ffn_gate_inp.weight', f32: true },
    },
    {
      role: 'ffn.experts.{e}.gate_proj.weight', kind: 'experts', shape: (c) => [Ie(c), c.dModel],
      stored: { jamba: 'feed_forward.experts.{e}.gate_proj.weight', granitemoehybrid: packedExpertGateUp(0) },
      gguf: { name: 'ffn_gate_exps.weight', transform: 'split_rows' },
    },
    {
      role: 'ffn.experts.{e}.up_proj.weight', kind: 'experts', shape: (c) => [Ie(c), c.dModel],
      stored: { jamba: 'feed_forward.experts.{e}.up_proj.weight', granitemoehybrid: packedExpertGateUp(1) },
      gguf: { name: 'ffn_up_exps.weight', transform: 'split_rows' },
    },
    {
      role: 'ffn.experts.{e}.down_proj.weight', kind: 'experts', shape: (c) => [c.dModel, Ie(c)],
      stored: { jamba: 'feed_forward.experts.{e}.down_proj.weight', granitemoehybrid: packedExpertDown },
      gguf: { name: 'ffn_down_exps.weight', transform: 'split_rows' },
    },
    {
      role: 'ffn.shared.gate_proj.weight', kind: 'matrix', shape: (c) => [Is(c), c.dModel], when: hasShared,
      stored: { granitemoehybrid: packedGateUp('shared_mlp.input_linear.weight', 0, Is) },
      gguf: { name: 'ffn_gate_shexp.weight' },
    },
    {
      role: 'ffn.shared.up_proj.weight', kind: 'matrix', shape: (c) => [Is(c), c.dModel], when: hasShared,
      stored: { granitemoehybrid: packedGateUp('shared_mlp.input_linear.weight', 1, Is) },
      gguf: { name: 'ffn_up_shexp.weight' },
    },
    {
      role: 'ffn.shared.down_proj.weight', kind: 'matrix', shape: (c) => [c.dModel, Is(c)], when: hasShared,
      stored: { granitemoehybrid: 'shared_mlp.output_linear.weight' },
      explain: (c, a) => (a.length === 2 && a[1] !== Is(c) ? `its columns imply a shared width of ${a[1]}, the config gives ${Is(c)} (shared_intermediate_size)` : undefined),
      gguf: { name: 'ffn_down_shexp.weight' },
    },
  ],
};
