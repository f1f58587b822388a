// Mamba-2 mixer tensors (shared/REFERENCE.md sections 2, 3; Granite 4.0-H's
// GraniteMoeHybridMambaLayer, 7(b), has the same tensors).
// d hidden, di inner, N state, H heads, G groups, K conv width;
// in_proj [z (di), xBC (di + 2GN), dt (H)] rows.
// Stored: state-spaces / HF Mamba-2 under the canonical names; Granite under
// `model.layers.i.mamba.`.
import type { MambaConfig } from '../config';
import type { BlockDecl, TensorDecl } from './types';

function names(name: string): TensorDecl['stored'] {
  return { mamba2: `mixer.${name}`, granitemoehybrid: `mamba.${name}` };
}

const convDim = (c: MambaConfig) => c.dInner + 2 * c.ngroups * c.dState;
const inProjRows = (c: MambaConfig) => 2 * c.dInner + 2 * c.ngroups * c.dState + c.nheads;
const heads = (c: MambaConfig, a: number[]) => (a.length === 1 && a[0] !== c.nheads ? `it implies nheads = ${a[0]}, the config gives ${c.nheads}` : undefined);
const headDims = (c: MambaConfig) => [[1, c.nheads], [c.nheads]];

export const MAMBA2: BlockDecl = {
  kind: 'mamba2',
  tensors: [
    {
      role: 'mixer.in_proj.weight', kind: 'matrix', shape: (c) => [inProjRows(c), c.dModel], stored: names('in_proj.weight'),
      explain: (c, a) => {
        const g = (a[0] - 2 * c.dInner - c.nheads) / (2 * c.dState);
        return a[0] !== inProjRows(c) && Number.isInteger(g) && g > 0
          ? `its rows imply ngroups = ${g} (with d_inner ${c.dInner}, d_state ${c.dState}, nheads ${c.nheads}), the config gives ${c.ngroups}`
          : undefined;
      },
      gguf: { name: 'ssm_in.weight' },
    },
    { role: 'mixer.in_proj.bias', kind: 'vector', shape: (c) => [inProjRows(c)], when: (c) => c.useBias, stored: names('in_proj.bias') },
    {
      role: 'mixer.conv1d.weight', kind: 'vector', shape: (c) => [convDim(c), 1, c.dConv], stored: names('conv1d.weight'),
      explain: (c, a) => {
        const g = (a[0] - c.dInner) / (2 * c.dState);
        return a[0] !== convDim(c) && Number.isInteger(g) && g > 0 ? `its channels imply ngroups = ${g}, the config gives ${c.ngroups}` : undefined;
      },
      gguf: { name: 'ssm_conv1d.weight', dims: (c) => [[c.dConv, convDim(c)], [c.dConv, 1, convDim(c)]], transform: 'squeeze_conv' },
    },
    { role: 'mixer.conv1d.bias', kind: 'vector', shape: (c) => [convDim(c)], when: (c) => c.convBias, stored: names('conv1d.bias'), gguf: { name: 'ssm_conv1d.bias', optional: true } },
    { role: 'mixer.dt_bias', kind: 'vector', shape: (c) => [c.nheads], explain: heads, stored: names('dt_bias'), gguf: { name: 'ssm_dt.bias', dims: (c) => [[c.nheads], [1, c.nheads]] } },
    { role: 'mixer.A_log', kind: 'vector', shape: (c) => [c.nheads], explain: heads, stored: names('A_log'), gguf: { name: 'ssm_a', dims: headDims, transform: 'neg_exp', canonical: 'mixer.A' } },
    { role: 'mixer.D', kind: 'vector', shape: (c) => [c.nheads], explain: heads, stored: names('D'), gguf: { name: 'ssm_d', dims: headDims } },
    {
      role: 'mixer.norm.weight', kind: 'vector', shape: (c) => [c.dInner], stored: names('norm.weight'),
      gguf: { name: 'ssm_norm.weight', dims: (c) => [[c.dInner / c.ngroups, c.ngroups], [c.dInner]] },
    },
    {
      role: 'mixer.out_proj.weight', kind: 'matrix', shape: (c) => [c.dModel, c.dInner], stored: names('out_proj.weight'),
      explain: (c, a) => (a.length === 2 && a[1] !== c.dInner ? `its columns imply d_inner = ${a[1]}, the config gives ${c.dInner}` : undefined),
      gguf: { name: 'ssm_out.weight' },
    },
    { role: 'mixer.out_proj.bias', kind: 'vector', shape: (c) => [c.dModel], when: (c) => c.useBias, stored: names('out_proj.bias') },
  ],
};
