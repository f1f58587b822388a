// Mamba-1 mixer tensors (shared/REFERENCE.md sections 1, 3; Jamba's
// JambaMambaMixer, 7(a), adds the RMSNorms of dt, B and C after x_proj).
// d hidden, di inner, N state, R dt rank, K conv width.
// Stored: state-spaces / HF Mamba under the canonical names; Jamba under
// `model.layers.i.mamba.` with dt_layernorm / b_layernorm / c_layernorm for
// mixer.dt_norm / B_norm / C_norm.
import type { BlockDecl, TensorDecl } from './types';

/** role 'mixer.<name>' stored as 'mixer.<name>' (mamba) and 'mamba.<jambaName>' (jamba). */
function names(name: string, jambaName = name): TensorDecl['stored'] {
  return { mamba: `mixer.${name}`, jamba: `mamba.${jambaName}` };
}

export const MAMBA1: BlockDecl = {
  kind: 'mamba1',
  tensors: [
    {
      role: 'mixer.in_proj.weight', kind: 'matrix', shape: (c) => [2 * c.dInner, c.dModel], stored: names('in_proj.weight'),
      explain: (c, a) => (a[0] !== 2 * c.dInner && a[0] % 2 === 0 ? `its rows imply d_inner = ${a[0] / 2}, the config gives ${c.dInner}` : undefined),
      gguf: { name: 'ssm_in.weight' },
    },
    { role: 'mixer.in_proj.bias', kind: 'vector', shape: (c) => [2 * c.dInner], when: (c) => c.useBias, stored: names('in_proj.bias') },
    {
      role: 'mixer.conv1d.weight', kind: 'vector', shape: (c) => [c.dInner, 1, c.dConv], stored: names('conv1d.weight'),
      gguf: { name: 'ssm_conv1d.weight', dims: (c) => [[c.dConv, c.dInner], [c.dConv, 1, c.dInner]], transform: 'squeeze_conv' },
    },
    { role: 'mixer.conv1d.bias', kind: 'vector', shape: (c) => [c.dInner], when: (c) => c.convBias, stored: names('conv1d.bias'), gguf: { name: 'ssm_conv1d.bias', optional: true } },
    {
      role: 'mixer.x_proj.weight', kind: 'matrix', shape: (c) => [c.dtRank + 2 * c.dState, c.dInner], stored: names('x_proj.weight'),
      explain: (c, a) => (a[0] !== c.dtRank + 2 * c.dState
        ? `its rows imply dt_rank = ${a[0] - 2 * c.dState} with d_state ${c.dState}, the config gives dt_rank ${c.dtRank}` : undefined),
      gguf: { name: 'ssm_x.weight', f32: true },
    },
    {
      role: 'mixer.dt_norm.weight', kind: 'vector', shape: (c) => [c.dtRank], when: (c) => c.mambaInnerNorms === true,
      stored: { jamba: 'mamba.dt_layernorm.weight' }, gguf: { name: 'ssm_dt_norm.weight' },
    },
    {
      role: 'mixer.B_norm.weight', kind: 'vector', shape: (c) => [c.dState], when: (c) => c.mambaInnerNorms === true,
      stored: { jamba: 'mamba.b_layernorm.weight' }, gguf: { name: 'ssm_b_norm.weight' },
    },
    {
      role: 'mixer.C_norm.weight', kind: 'vector', shape: (c) => [c.dState], when: (c) => c.mambaInnerNorms === true,
      stored: { jamba: 'mamba.c_layernorm.weight' }, gguf: { name: 'ssm_c_norm.weight' },
    },
    {
      role: 'mixer.dt_proj.weight', kind: 'matrix', shape: (c) => [c.dInner, c.dtRank], stored: names('dt_proj.weight'),
      explain: (c, a) => (a.length === 2 && a[1] !== c.dtRank ? `its columns imply dt_rank = ${a[1]}, the config gives ${c.dtRank}` : undefined),
      gguf: { name: 'ssm_dt.weight', f32: true },
    },
    { role: 'mixer.dt_proj.bias', kind: 'vector', shape: (c) => [c.dInner], stored: names('dt_proj.bias'), gguf: { name: 'ssm_dt.bias' } },
    {
      role: 'mixer.A_log', kind: 'vector', shape: (c) => [c.dInner, c.dState], stored: names('A_log'),
      explain: (c, a) => (a.length === 2 && a[1] !== c.dState ? `it implies d_state = ${a[1]}, the config gives ${c.dState}` : undefined),
      gguf: { name: 'ssm_a', transform: 'neg_exp', canonical: 'mixer.A' },
    },
    { role: 'mixer.D', kind: 'vector', shape: (c) => [c.dInner], stored: names('D'), gguf: { name: 'ssm_d', dims: (c) => [[c.dInner], [1, c.dInner]] } },
    {
      role: 'mixer.out_proj.weight', kind: 'matrix', shape: (c) => [c.dModel, c.dInner], stored: names('out_proj.weight'),
      explain: (c, a) => (a.length === 2 && a[1] !== c.dInner ? `its columns imply d_inner = ${a[1]}, the config gives ${c.dInner}` : undefined),
      gguf: { name: 'ssm_out.weight' },
    },
    { role: 'mixer.out_proj.bias', kind: 'vector', shape: (c) => [c.dModel], when: (c) => c.useBias, stored: names('out_proj.bias') },
  ],
};
