#!/usr/bin/env python3
"""Trains the small byte-level Granite 4.0-H-like hybrid in
test/fixtures/trained/granite-bytes/.

A development tool, not part of the package: it needs PyTorch and numpy, the
package and its tests need neither. Written from the published semantics of
transformers' GraniteMoeHybrid (REFERENCE.md section 7(b)), not copied. The
data split, byte tokens, metric, files, optimiser, schedule and seed are those
of scripts/train_byte_mamba.py, whose Mamba-2 mixer, RMSNorm, chunked SSD,
safetensors writer, tokenizer and evaluation are imported from it.

  nice -n 10 /usr/bin/python3 scripts/train_byte_hybrid.py \
      --corpus tinyshakespeare.txt --out test/fixtures/trained [--steps N]

Model (`model_type: "granitemoehybrid"`), byte vocabulary 256, tied embeddings:
  d_model 128, 4 layers, layer_types [mamba, mamba, attention, mamba];
  Mamba-2 layers: expand 2 (d_inner 256), 8 heads of 32, 1 group, d_state 64,
      d_conv 4, conv bias, no in/out_proj bias, chunk_size 64; gated RMSNorm
      rms(y * silu(z)) over all of d_inner (GraniteMoeHybridRMSNormGated);
  attention layer: 4 query heads of 32, 2 KV heads (GQA), no positional
      encoding ("nope"), causal, scores scaled by attention_multiplier 1/32;
  every layer's feed-forward: 4 experts of width 64, top-2 (the top-2 router
      logits, softmax over those two) + a shared expert of width 128, each
      down(silu(gate x) * up x);
  multipliers (those of granite-4.0-h-350m, REFERENCE.md 7(b); attention =
      1/head_dim as there): embedding 12, residual 0.246, logits_scaling 3;
  RMSNorm eps 1e-5.

Forward (transformers GraniteMoeHybridModel / DecoderLayer):
  h = embed(ids) * embedding_multiplier
  per layer: h = h + mixer(rms(h, input_layernorm)) * residual_multiplier
             x = rms(h, post_attention_layernorm)
             h = h + (moe(x) + shared_mlp(x)) * residual_multiplier
  logits = rms(h, model.norm) @ embed^T / logits_scaling

Outputs <out>/granite-bytes/{config.json, model.safetensors, tokenizer.json}
and this model's entry in <out>/metrics.json (the other entries are kept).
heldout.txt, calibration.txt and the corpus fields of metrics.json are NOT
rewritten; the script checks that they match the corpus instead.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

# One thread for real: Debian's PyTorch calls a pthreads OpenBLAS, which
# ignores torch.set_num_threads and would otherwise use every core.
for _var in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_byte_mamba as tbm  # noqa: E402
from train_byte_mamba import RMSNorm, Mamba2Mixer, WINDOW, window_nll  # noqa: E402

DIR = 'granite-bytes'

SPEC = dict(
    d_model=128, vocab=256,
    layer_types=['mamba', 'mamba', 'attention', 'mamba'],
    mamba=dict(d_state=64, d_conv=4, expand=2, headdim=32, ngroups=1, chunk_size=64),
    n_heads=4, n_kv_heads=2,
    experts=4, top_k=2, expert_dim=64, shared_dim=128,
    embedding_multiplier=12.0, residual_multiplier=0.246, attention_multiplier=1.0 / 32, logits_scaling=3.0,
    eps=1e-5,
)


# ---------------------------------------------------------------------------
# Attention (GraniteMoeHybridAttention, no RoPE)
# ---------------------------------------------------------------------------

def causal_attention(q, k, v, scale, block=256):
    """softmax(q k^T * scale, causal) v, per head; q, k, v (b, h, L, hd) with
    k, v already repeated to the query heads. Queries in blocks of `block`:
    a block reads only the keys up to its end, the mask touches only its
    diagonal square, and a long window never holds an (L, L) score matrix."""
    L = q.shape[2]
    outs = []
    for s in range(0, L, block):
        e = min(L, s + block)
        sc = torch.matmul(q[:, :, s:e], k[:, :, :e].transpose(-1, -2)) * scale       # (b, h, e-s, e)
        future = torch.ones(e - s, e - s, dtype=torch.bool, device=q.device).triu(1)
        sc[..., s:e] = sc[..., s:e].masked_fill(future, float('-inf'))
        outs.append(torch.matmul(torch.softmax(sc, dim=-1), v[:, :, :e]))
    return torch.cat(outs, dim=2)


class Attention(nn.Module):
    def __init__(self, d, n_heads, n_kv_heads, scale):
        super().__init__()
        self.h, self.hkv, self.hd, self.scale = n_heads, n_kv_heads, d // n_heads, scale
        self.q_proj = nn.Linear(d, n_heads * self.hd, bias=False)
        self.k_proj = nn.Linear(d, n_kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(d, n_kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(n_heads * self.hd, d, bias=False)

    def forward(self, x):
        b, L, _ = x.shape
        q = self.q_proj(x).view(b, L, self.h, self.hd).transpose(1, 2)
        # query head j reads KV head j // (h / hkv)
        rep = self.h // self.hkv
        k = self.k_proj(x).view(b, L, self.hkv, self.hd).transpose(1, 2).repeat_interleave(rep, dim=1)
        v = self.v_proj(x).view(b, L, self.hkv, self.hd).transpose(1, 2).repeat_interleave(rep, dim=1)
        y = causal_attention(q, k, v, self.scale)
        return self.o_proj(y.transpose(1, 2).reshape(b, L, self.h * self.hd))


# ---------------------------------------------------------------------------
# Feed-forward: GraniteMoeHybridMoE (packed experts) + GraniteMoeHybridMLP
# ---------------------------------------------------------------------------

class SharedMLP(nn.Module):
    """output_linear(silu(gate) * up), input_linear rows [gate (I) | up (I)]."""

    def __init__(self, d, width):
        super().__init__()
        self.input_linear = nn.Linear(d, 2 * width, bias=False)
        self.output_linear = nn.Linear(width, d, bias=False)

    def forward(self, x):
        g, u = self.input_linear(x).chunk(2, dim=-1)
        return self.output_linear(F.silu(g) * u)


class MoE(nn.Module):
    """Router: the top-k logits, softmax over those k (GraniteMoeHybridTopKGating).
    Experts packed: input_linear [E, 2I, d] (rows [0, I) gate, [I, 2I) up),
    output_linear [E, d, I]. Computed densely (every expert on every token,
    weight 0 where not chosen): the same sum as the sparse dispatch."""

    def __init__(self, d, experts, top_k, width):
        super().__init__()
        self.E, self.k, self.I = experts, top_k, width
        self.router = nn.Linear(d, experts, bias=False)          # stored as router.layer.weight
        bound_in, bound_out = 1 / math.sqrt(d), 1 / math.sqrt(width)  # nn.Linear's default bounds
        self.input_linear = nn.Parameter(torch.empty(experts, 2 * width, d).uniform_(-bound_in, bound_in))
        self.output_linear = nn.Parameter(torch.empty(experts, d, width).uniform_(-bound_out, bound_out))
        self.last_load = None  # fraction of (token, slot) pairs per expert, for monitoring

    def gates(self, x):
        logits = self.router(x)
        top_v, top_i = logits.topk(self.k, dim=-1)
        w = torch.zeros_like(logits).scatter(-1, top_i, torch.softmax(top_v, dim=-1))
        return w, top_i

    def forward(self, x):
        w, top_i = self.gates(x)
        with torch.no_grad():
            self.last_load = torch.bincount(top_i.reshape(-1), minlength=self.E).double() / top_i.numel()
        gu = torch.einsum('...d,efd->...ef', x, self.input_linear)
        a = F.silu(gu[..., :self.I]) * gu[..., self.I:]
        out = torch.einsum('...ei,edi->...ed', a, self.output_linear)
        return torch.einsum('...ed,...e->...d', out, w)

    def forward_sparse(self, x):
        """Token by token over the chosen experts only (self-test)."""
        xs = x.reshape(-1, x.shape[-1])
        y = torch.zeros_like(xs)
        for t in range(xs.shape[0]):
            logits = self.router(xs[t])
            top_v, top_i = logits.topk(self.k)
            p = torch.softmax(top_v, dim=-1)
            for j in range(self.k):
                e = int(top_i[j])
                gu = self.input_linear[e] @ xs[t]
                y[t] += p[j] * (self.output_linear[e] @ (F.silu(gu[:self.I]) * gu[self.I:]))
        return y.reshape(x.shape)


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

class Layer(nn.Module):
    def __init__(self, kind, s):
        super().__init__()
        d = s['d_model']
        self.kind = kind
        self.input_layernorm = RMSNorm(d, s['eps'])
        if kind == 'mamba':
            self.mixer = Mamba2Mixer(d, **s['mamba'])
            # ngroups 1: the imported grouped gated norm spans all of d_inner, as Granite's
            assert self.mixer.norm.group_size == self.mixer.d_inner
            self.mixer.norm.eps = s['eps']
        else:
            self.mixer = Attention(d, s['n_heads'], s['n_kv_heads'], s['attention_multiplier'])
        self.post_attention_layernorm = RMSNorm(d, s['eps'])
        self.moe = MoE(d, s['experts'], s['top_k'], s['expert_dim'])
        self.shared_mlp = SharedMLP(d, s['shared_dim'])
        self.res = s['residual_multiplier']

    def forward(self, h):
        h = h + self.mixer(self.input_layernorm(h)) * self.res
        x = self.post_attention_layernorm(h)
        return h + (self.moe(x) + self.shared_mlp(x)) * self.res


class ByteGranite(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.embed_tokens = nn.Embedding(s['vocab'], s['d_model'])
        self.layers = nn.ModuleList([Layer(k, s) for k in s['layer_types']])
        self.norm = RMSNorm(s['d_model'], s['eps'])
        # Embedding N(0, 1/embedding_multiplier^2): h starts at unit scale.
        # Linear layers keep nn.Linear's default (as train_byte_mamba.py);
        # the Mamba-2 parameters get the state-spaces init of Mamba2Mixer.
        nn.init.normal_(self.embed_tokens.weight, std=1.0 / s['embedding_multiplier'])

    def forward(self, ids):
        h = self.embed_tokens(ids) * self.s['embedding_multiplier']
        for layer in self.layers:
            h = layer(h)
        return F.linear(self.norm(h), self.embed_tokens.weight) / self.s['logits_scaling']  # tied head

    def hf_state(self):
        """Hugging Face GraniteMoeHybrid tensor names -> float32 numpy arrays."""
        out = {'model.embed_tokens.weight': self.embed_tokens.weight}
        for i, L in enumerate(self.layers):
            p = f'model.layers.{i}.'
            out[p + 'input_layernorm.weight'] = L.input_layernorm.weight
            mx = L.mixer
            if L.kind == 'mamba':
                m = p + 'mamba.'
                out[m + 'in_proj.weight'] = mx.in_proj.weight
                out[m + 'conv1d.weight'] = mx.conv1d.weight       # [C, 1, K]
                out[m + 'conv1d.bias'] = mx.conv1d.bias
                out[m + 'dt_bias'] = mx.dt_bias
                out[m + 'A_log'] = mx.A_log
                out[m + 'D'] = mx.D
                out[m + 'norm.weight'] = mx.norm.weight
                out[m + 'out_proj.weight'] = mx.out_proj.weight
            else:
                a = p + 'self_attn.'
                for n in ('q_proj', 'k_proj', 'v_proj', 'o_proj'):
                    out[a + n + '.weight'] = getattr(mx, n).weight
            out[p + 'post_attention_layernorm.weight'] = L.post_attention_layernorm.weight
            b = p + 'block_sparse_moe.'
            out[b + 'router.layer.weight'] = L.moe.router.weight
            out[b + 'input_linear.weight'] = L.moe.input_linear
            out[b + 'output_linear.weight'] = L.moe.output_linear
            out[p + 'shared_mlp.input_linear.weight'] = L.shared_mlp.input_linear.weight
            out[p + 'shared_mlp.output_linear.weight'] = L.shared_mlp.output_linear.weight
        out['model.norm.weight'] = self.norm.weight
        return {k: v.detach().to(torch.float32).cpu().numpy() for k, v in out.items()}


    def load_hf_state(self, tensors):
        """The inverse of hf_state (for --eval-only)."""
        names = list(self.hf_state())
        assert set(tensors) == set(names), 'tensor names differ'
        own = dict(self.named_parameters())
        with torch.no_grad():
            for name in names:
                own[self._own_name(name)].copy_(torch.from_numpy(np.array(tensors[name])))

    @staticmethod
    def _own_name(hf):
        n = hf.replace('model.', '', 1) if hf.startswith('model.') else hf
        n = n.replace('.mamba.', '.mixer.').replace('.self_attn.', '.mixer.').replace('block_sparse_moe.', 'moe.')
        n = n.replace('moe.router.layer.weight', 'moe.router.weight')
        n = n.replace('moe.input_linear.weight', 'moe.input_linear').replace('moe.output_linear.weight', 'moe.output_linear')
        return n


def hf_config(s):
    """config.json as transformers writes it for GraniteMoeHybridConfig (the
    keys of lib/testing/random_hybrid_checkpoint.ts). No special tokens: the
    byte vocabulary has none, so the token ids are null."""
    m = s['mamba']
    di = m['expand'] * s['d_model']
    return dict(
        architectures=['GraniteMoeHybridForCausalLM'], model_type='granitemoehybrid',
        vocab_size=s['vocab'], hidden_size=s['d_model'], intermediate_size=s['expert_dim'],
        num_hidden_layers=len(s['layer_types']), num_attention_heads=s['n_heads'],
        num_key_value_heads=s['n_kv_heads'], hidden_act='silu', initializer_range=0.02,
        rms_norm_eps=s['eps'], use_cache=True, tie_word_embeddings=True,
        pad_token_id=None, bos_token_id=None, eos_token_id=None,
        attention_dropout=0.0, num_experts_per_tok=s['top_k'], output_router_logits=False,
        router_aux_loss_coef=0.0,
        mamba_d_state=m['d_state'], mamba_d_conv=m['d_conv'], mamba_expand=m['expand'],
        mamba_conv_bias=True, mamba_proj_bias=False, torch_dtype='float32',
        num_local_experts=s['experts'], shared_intermediate_size=s['shared_dim'],
        layer_types=list(s['layer_types']),
        mamba_n_heads=di // m['headdim'], mamba_n_groups=m['ngroups'], mamba_d_head=m['headdim'],
        mamba_chunk_size=m['chunk_size'],
        embedding_multiplier=s['embedding_multiplier'], residual_multiplier=s['residual_multiplier'],
        attention_multiplier=s['attention_multiplier'], logits_scaling=s['logits_scaling'],
        position_embedding_type='nope', rope_theta=10000.0, rope_scaling=None,
        attention_bias=False, normalization_function='rmsnorm', max_position_embeddings=131072,
    )


# ---------------------------------------------------------------------------
# Self-test, training
# ---------------------------------------------------------------------------

def self_test():
    tbm.self_test()
    g = torch.Generator().manual_seed(2)
    # Blocked causal attention = one (L, L) softmax.
    q, k, v = (torch.randn(2, 4, 300, 8, generator=g, dtype=torch.float64) for _ in range(3))
    full = torch.softmax((q @ k.transpose(-1, -2) * 0.3).masked_fill(
        torch.ones(300, 300, dtype=torch.bool).triu(1), float('-inf')), -1) @ v
    err = (causal_attention(q, k, v, 0.3, block=64) - full).abs().max().item()
    assert err < 1e-12, f'blocked attention differs by {err}'
    # Dense MoE = the sparse per-token dispatch.
    torch.manual_seed(3)
    moe = MoE(16, 4, 2, 8).double()
    x = torch.randn(3, 7, 16, generator=g, dtype=torch.float64)
    with torch.no_grad():
        err = (moe(x) - moe.forward_sparse(x)).abs().max().item()
    assert err < 1e-12, f'dense MoE differs from the sparse dispatch by {err}'
    # Causality of the whole model: the prefix's logits do not depend on later bytes.
    torch.manual_seed(4)
    m = ByteGranite(SPEC).double().eval()
    ids = torch.randint(0, 256, (1, 150), generator=g)
    ids2 = ids.clone()
    ids2[0, 100:] = (ids2[0, 100:] + 1) % 256
    with torch.no_grad():
        err = (m(ids)[0, :100] - m(ids2)[0, :100]).abs().max().item()
    assert err < 1e-10, f'the model is not causal ({err})'
    print('self-test passed: blocked attention, dense MoE = sparse dispatch, causal model', flush=True)


def expert_load(model):
    return [L.moe.last_load.tolist() for L in model.layers]


def train(args, train_bytes, heldout, out_dir):
    s = SPEC
    torch.manual_seed(args.seed)
    np_rng = np.random.default_rng(args.seed)
    model = ByteGranite(s)
    n_params = sum(p.numel() for p in model.parameters())
    print(f'[granite] {n_params} parameters', flush=True)

    # matrices decay (embedding, projections, router, packed experts);
    # norms, biases, conv taps, A_log, D, dt_bias do not
    def decays(name, p):
        return (p.dim() >= 2 and 'conv1d' not in name and
                (name.endswith('weight') or name.endswith('input_linear') or name.endswith('output_linear')))

    def report():
        return ' | expert load ' + ' '.join('[' + ','.join(f'{x:.2f}' for x in l) + ']' for l in expert_load(model))

    train_seconds, hist = tbm.train_steps(model, decays, args, train_bytes, heldout, np_rng, 'granite', report)

    def load_report():
        return 'expert load on the window (float64): ' + ' '.join(
            '[' + ','.join(f'{x:.3f}' for x in l) + ']' for l in expert_load(model))

    return tbm.save_and_measure(model, out_dir, DIR, 'granitemoehybrid', hf_config(s), 'granite', n_params, heldout,
                                args, train_seconds, hist, load_report)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--corpus', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--steps', type=int, default=1000)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seq-len', type=int, default=256)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--warmup', type=int, default=50)
    ap.add_argument('--weight-decay', type=float, default=0.1)
    ap.add_argument('--seed', type=int, default=1234)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--eval-every', type=int, default=250)
    ap.add_argument('--no-save', action='store_true', help='train and report only (timing runs)')
    ap.add_argument('--eval-only', metavar='DIR', help='print the float64 window perplexity of a saved checkpoint and exit')
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    if args.eval_only:
        model = ByteGranite(SPEC)
        model.load_hf_state(tbm.read_safetensors(os.path.join(args.eval_only, 'model.safetensors')))
        model.eval()
        heldout = open(os.path.join(args.out, 'heldout.txt'), 'rb').read()
        nll = window_nll(model, np.frombuffer(heldout, dtype=np.uint8)[:WINDOW], torch.float64)
        print(f'{args.eval_only}: window ppl float64 {math.exp(nll):.10f} (nll {nll:.12f})')
        return 0
    self_test()

    raw = open(args.corpus, 'rb').read()
    data = np.frombuffer(raw, dtype=np.uint8)
    n_train = len(data) * 9 // 10
    train_bytes, heldout = data[:n_train], data[n_train:]

    # The shared files stay as they are; check they are this corpus's.
    metrics_path = os.path.join(args.out, 'metrics.json')
    metrics = json.load(open(metrics_path))
    c = metrics['corpus']
    assert c['sha256'] == hashlib.sha256(raw).hexdigest() and c['train_bytes'] == n_train, 'another corpus'
    assert open(os.path.join(args.out, 'heldout.txt'), 'rb').read() == heldout.tobytes()
    counts = np.bincount(train_bytes, minlength=256).astype(np.float64) + 1
    unigram_ppl = math.exp(-np.log(counts / counts.sum())[heldout[1:WINDOW]].mean())
    print(f'corpus {len(raw)} bytes: train {n_train}, held out {len(heldout)}; '
          f'unigram ppl on the window {unigram_ppl:.3f} (metrics.json: {metrics["unigram_window_ppl"]:.3f})', flush=True)

    if args.no_save:
        args.out = os.path.join('/tmp', 'granite-bytes-scratch')
    entry = train(args, train_bytes, heldout, args.out)
    if args.no_save:
        return 0
    metrics['models'][DIR] = entry
    metrics['models'] = dict(sorted(metrics['models'].items()))
    tbm.write_json(metrics_path, metrics)
    return 0


if __name__ == '__main__':
    sys.exit(main())
