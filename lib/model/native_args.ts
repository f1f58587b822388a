// A resolved checkpoint and the load options -> the engine's load arguments
// (lib/native/types.ts NativeLoadArgs; the fields docs/hybrid-engine.md's
// contract names). Models without attention, MLP or MoE layers get zeros
// for those sizes (moeRouter 'softmax_topk', unused); the multipliers
// default to 1; gatedNormGroupSize defaults to dInner / ngroups.
import type { Checkpoint } from '../loaders/checkpoint';
import type { NativeLoadArgs } from '../native/types';
import type { MambaConfig } from './config';
import type { NativeBackend } from './device';
import type { KvCacheType } from './load_options';

/** The per-layer schedule and the hybrid sizes of NativeLoadArgs. */
export type NativeModelShape = Pick<NativeLoadArgs,
  'layers' | 'mambaInnerNorms' | 'gatedNormGroupSize' | 'nHeads' | 'nKvHeads' | 'headDim' | 'attnScale' | 'ropeTheta' | 'ropeDim' | 'ropeInterleaved' |
  'mlpDim' | 'moeExperts' | 'moeTopK' | 'moeDim' | 'moeRouter' | 'moeSharedDim' |
  'embeddingMultiplier' | 'residualMultiplier' | 'logitsScaling' | 'contextSize' | 'kvDtype'>;

export function nativeModelShape(c: MambaConfig, contextSize: number, kvDtype: KvCacheType): NativeModelShape {
  const a = c.attention, m = c.moe, k = c.multipliers;
  return {
    layers: c.layers.map((l) => ({ mixer: l.mixer, ffn: l.ffn })),
    mambaInnerNorms: c.mambaInnerNorms ?? false,
    gatedNormGroupSize: c.gatedNormGroupSize ?? c.dInner / c.ngroups,
    nHeads: a?.nHeads ?? 0, nKvHeads: a?.nKvHeads ?? 0, headDim: a?.headDim ?? 0,
    attnScale: a?.scale ?? 0, ropeTheta: a?.ropeTheta ?? 0, ropeDim: a?.ropeDim ?? 0, ropeInterleaved: a?.ropeInterleaved ?? false,
    mlpDim: c.mlpDim ?? 0,
    moeExperts: m?.experts ?? 0, moeTopK: m?.topK ?? 0, moeDim: m?.dim ?? 0, moeRouter: m?.router ?? 'softmax_topk', moeSharedDim: m?.sharedDim ?? 0,
    embeddingMultiplier: k?.embedding ?? 1, residualMultiplier: k?.residual ?? 1, logitsScaling: k?.logits ?? 1,
    contextSize, kvDtype,
  };
}

export interface NativeLoadOptions {
  backend: NativeBackend;
  threads?: number;
  roundActivations: boolean;
  contextSize: number;
  kvDtype: KvCacheType;
}

export function nativeLoadArgs(ck: Checkpoint, o: NativeLoadOptions): NativeLoadArgs {
  const c = ck.config;
  return {
    arch: c.arch,
    dModel: c.dModel, nLayer: c.nLayer, vocabSize: c.vocabSize, dState: c.dState, dConv: c.dConv,
    dInner: c.dInner, dtRank: c.dtRank, headdim: c.headdim, nheads: c.nheads, ngroups: c.ngroups,
    normEps: c.normEps,
    dtMin: c.timeStepLimit[0],
    ...(Number.isFinite(c.timeStepLimit[1]) ? { dtMax: c.timeStepLimit[1] } : {}),
    backend: o.backend,
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    roundActivations: o.roundActivations,
    hadamardOut: c.quantization?.hadamard ?? false,
    hadamardResidual: c.quantization?.residualRotation === 'online',
    ssmInt8: c.quantization?.ssmActivations === 'int8',
    ...nativeModelShape(c, o.contextSize, o.kvDtype),
    files: ck.files,
    tensors: [...ck.tensors].map(([name, t]) => ({ name, file: t.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape })),
  };
}
