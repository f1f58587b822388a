// Attention mixer tensors (shared/REFERENCE.md 7(a), 7(b)): q [Hq·hd, d],
// k / v [Hkv·hd, d], o [d, Hq·hd], no biases. Stored by Jamba and Granite as
// `model.layers.i.self_attn.{q,k,v,o}_proj.weight`; llama.cpp attn_q / attn_k /
// attn_v / attn_output; with RoPE (granitehybrid) q and k hold each head's
// rows in llama.cpp's interleaved-pair order (types.ts GgufDecl.ropePairs).
import type { MambaConfig } from '../config';
import { need, type BlockDecl, type TensorDecl } from './types';

const attn = (c: MambaConfig) => need(c.attention, 'attention');
const qRows = (c: MambaConfig) => attn(c).nHeads * attn(c).headDim;
const kvRows = (c: MambaConfig) => attn(c).nKvHeads * attn(c).headDim;

function proj(name: 'q' | 'k' | 'v' | 'o', gguf: string, shape: (c: MambaConfig) => number[], explain?: TensorDecl['explain'],
  ropePairs?: (c: MambaConfig) => number): TensorDecl {
  const stored = `self_attn.${name}_proj.weight`;
  return {
    role: `mixer.${name}_proj.weight`, kind: 'matrix', shape, explain,
    stored: { jamba: stored, granitemoehybrid: stored }, gguf: { name: `${gguf}.weight`, ...(ropePairs ? { ropePairs } : {}) },
  };
}

const kvExplain: TensorDecl['explain'] = (c, a) => {
  const hd = attn(c).headDim;
  return a.length === 2 && a[0] !== kvRows(c) && a[0] % hd === 0
    ? `its rows imply ${a[0] / hd} key/value heads of ${hd} channels, the config gives ${attn(c).nKvHeads} (num_key_value_heads)` : undefined;
};

export const ATTENTION: BlockDecl = {
  kind: 'attention',
  tensors: [
    proj('q', 'attn_q', (c) => [qRows(c), c.dModel], undefined, (c) => attn(c).nHeads),
    proj('k', 'attn_k', (c) => [kvRows(c), c.dModel], kvExplain, (c) => attn(c).nKvHeads),
    proj('v', 'attn_v', (c) => [kvRows(c), c.dModel], kvExplain),
    proj('o', 'attn_output', (c) => [c.dModel, qRows(c)]),
  ],
};
