#!/usr/bin/env python3
"""Trains the two small byte-level language models in test/fixtures/trained/.

A development tool, not part of the package: it needs PyTorch and numpy, the
package and its tests need neither. Written from the published semantics
(REFERENCE.md sections 1-3: state-spaces/mamba mamba_simple.py, mamba2.py,
block.py, mixer_seq_simple.py; the chunked SSD of ssd_minimal.py), not copied.

  /usr/bin/python3 scripts/train_byte_mamba.py --corpus tinyshakespeare.txt \
      --out test/fixtures/trained [--model mamba1|mamba2|all] [--steps N]

Data: the corpus as BYTES (vocabulary 256, token id = byte value). The first
90% (floor) of the bytes train, the last 10% are held out and never seen in
training.

Models (tied embeddings, no in/out_proj bias, conv bias, RMSNorm eps 1e-5):
  mamba1: d_model 128, 4 layers, d_state 16, d_conv 4, expand 2, dt_rank 8
  mamba2: d_model 128, 4 layers, expand 2, headdim 32 (8 heads), ngroups 2,
          d_state 32, d_conv 4, chunk_size 64; gated RMSNorm per group of
          d_inner/ngroups channels, norm(y * silu(z)) (norm_before_gate False)

Outputs, per model, <out>/<name>/{config.json, model.safetensors, tokenizer.json}
in the Hugging Face layout (config dialect of transformers, float32 safetensors
written here by hand), plus <out>/heldout.txt, <out>/calibration.txt and
<out>/metrics.json (merged: one entry per model trained so far).

The metric: perplexity = exp(mean next-byte NLL, nats) over the first 8192 bytes
of heldout.txt taken as ONE window (bytes 1..8191 predicted from their
prefixes), computed in float64 (the float32 weights widened exactly).
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WINDOW = 8192
CALIBRATION_BYTES = 64 * 1024


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * w over the last dimension."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def causal_depthwise_conv(x, conv):
    """x (B, L, C) -> (B, L, C): conv1d with padding K-1 on both sides, keep the
    first L outputs, so out[t] = b + sum_k w[k] x[t-(K-1)+k] (w[K-1] multiplies
    the current token; positions before 0 read zeros)."""
    L = x.shape[1]
    return conv(x.transpose(1, 2))[..., :L].transpose(1, 2)


def inverse_softplus(y):
    return y + torch.log(-torch.expm1(-y))


def init_dt_bias(n, dt_min=1e-3, dt_max=1e-1, floor=1e-4):
    """dt log-uniform in [dt_min, dt_max] (floored), stored as softplus^-1(dt)."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    return inverse_softplus(dt.clamp(min=floor))


# ---------------------------------------------------------------------------
# Mamba-1
# ---------------------------------------------------------------------------

def selective_scan(u, delta, A, Bm, Cm):
    """Sequential selective scan (REFERENCE.md 1, selective_scan_ref), state from 0.

    u, delta (Bt, L, D); A (D, N); Bm, Cm (Bt, L, N). Returns sum_n h[., n] C[n]
    (Bt, L, D), without the D skip and the gate, where
    h_t = exp(delta_t A) h_{t-1} + (delta_t u_t) B_t.
    Each step works on (Bt, D, N) tensors only (no (Bt, L, D, N) tensor is
    made: the small ones stay in cache, which is ~3x faster on CPU), and the
    time axis is unbound once (indexing inside the loop would make the
    backward pass quadratic).
    """
    Bt, L, Dn = u.shape
    h = u.new_zeros(Bt, Dn, A.shape[1])
    ys = []
    for d_t, du_t, b_t, c_t in zip(delta.unbind(1), (delta * u).unbind(1), Bm.unbind(1), Cm.unbind(1)):
        dA = torch.exp(d_t.unsqueeze(-1) * A)                                # (Bt, D, N)
        h = torch.addcmul(du_t.unsqueeze(-1) * b_t.unsqueeze(1), dA, h)      # dA * h + delta u B
        ys.append(torch.bmm(h, c_t.unsqueeze(-1)).squeeze(-1))               # sum_n h[., n] C[n]
    return torch.stack(ys, 1)


def selective_scan_quadratic(u, delta, A, Bm, Cm):
    """The same scan in closed form, for the self-test:
    y_t = sum_{s<=t} sum_n C_t[n] exp(sum_{r=s+1..t} delta_r A[., n]) delta_s B_s[n] u_s."""
    Bt, L, Dn = u.shape
    cum = torch.cumsum(delta, 1)                                             # (Bt, L, D)
    y = torch.zeros_like(u)
    for t in range(L):
        dec = torch.exp((cum[:, t:t + 1] - cum[:, :t + 1]).unsqueeze(-1) * A)  # (Bt, s, D, N)
        contrib = dec * (delta[:, :t + 1] * u[:, :t + 1]).unsqueeze(-1) * Bm[:, :t + 1].unsqueeze(2)
        y[:, t] = torch.einsum('bsdn,bn->bd', contrib, Cm[:, t])
    return y


class Mamba1Mixer(nn.Module):
    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank=None, n_layer=1):
        super().__init__()
        di = expand * d_model
        self.d_inner, self.d_state = di, d_state
        self.dt_rank = dt_rank if dt_rank is not None else math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(di, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, di, bias=True)
        self.out_proj = nn.Linear(di, d_model, bias=False)
        # state-spaces initialisation: dt_proj weight U(+-dt_rank^-0.5), its bias
        # softplus^-1(dt) with dt log-uniform in [1e-3, 1e-1]; A = -(1..N) per
        # channel (S4D-real); D = 1.
        std = self.dt_rank ** -0.5
        with torch.no_grad():
            nn.init.uniform_(self.dt_proj.weight, -std, std)
            self.dt_proj.bias.copy_(init_dt_bias(di))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))

    def forward(self, h):
        di, N, R = self.d_inner, self.d_state, self.dt_rank
        x, z = self.in_proj(h).chunk(2, dim=-1)              # x first, z second
        x = F.silu(causal_depthwise_conv(x, self.conv1d))
        dt, Bm, Cm = torch.split(self.x_proj(x), [R, N, N], dim=-1)
        delta = F.softplus(self.dt_proj(dt))                  # softplus(W dt + b), threshold 20
        A = -torch.exp(self.A_log)
        y = selective_scan(x, delta, A, Bm, Cm) + x * self.D
        y = y * F.silu(z)
        return self.out_proj(y)


# ---------------------------------------------------------------------------
# Mamba-2
# ---------------------------------------------------------------------------

def segment_sums(a):
    """a (..., T) -> (..., T, T) with out[i, j] = a[j+1] + ... + a[i] for i >= j
    (0 on the diagonal) and -inf above it, built by masked cumulative sums (no
    differences of large prefix sums)."""
    T = a.shape[-1]
    rep = a.unsqueeze(-1).expand(*a.shape, T)                                # rep[..., i, j] = a[i]
    below = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), -1)
    rep = rep.masked_fill(~below, 0)
    out = torch.cumsum(rep, dim=-2)
    keep = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), 0)
    return out.masked_fill(~keep, float('-inf'))


def ssd_chunked(X, a, Bm, Cm, chunk):
    """Chunked state-space-dual scan (the ssd_minimal formulation), state from 0.

    X (b, L, h, p) already multiplied by dt; a (b, L, h) = dt * A (<= 0);
    Bm, Cm (b, L, h, n) (groups already expanded to heads).
    Same result as h_t = exp(a_t) h_{t-1} + X_t (x) B_t, y_t = h_t C_t.
    """
    b, L, H, P = X.shape
    pad = (-L) % chunk
    if pad:  # zeros at the end change nothing before them
        X = F.pad(X, (0, 0, 0, 0, 0, pad))
        a = F.pad(a, (0, 0, 0, pad))
        Bm = F.pad(Bm, (0, 0, 0, 0, 0, pad))
        Cm = F.pad(Cm, (0, 0, 0, 0, 0, pad))
    c = X.shape[1] // chunk
    X = X.reshape(b, c, chunk, H, P)
    Bm = Bm.reshape(b, c, chunk, H, -1)
    Cm = Cm.reshape(b, c, chunk, H, -1)
    a = a.reshape(b, c, chunk, H).permute(0, 3, 1, 2)                        # (b, h, c, l)
    a_cum = torch.cumsum(a, dim=-1)

    # 1. inside each chunk: y_l = sum_{s<=l} (C_l . B_s) exp(a_{s+1}+..+a_l) X_s
    decay = torch.exp(segment_sums(a))                                       # (b, h, c, l, s)
    scores = torch.einsum('bclhn,bcshn->bhcls', Cm, Bm) * decay
    y = torch.einsum('bhcls,bcshp->bclhp', scores, X)

    # 2. each chunk's own final state (from zero at its start)
    to_end = torch.exp(a_cum[..., -1:] - a_cum)                              # (b, h, c, l)
    chunk_states = torch.einsum('bclhn,bhcl,bclhp->bchpn', Bm, to_end, X)

    # 3. state entering each chunk: carried over chunks in order
    chunk_decay = torch.exp(a_cum[..., -1])                                  # (b, h, c)
    state = X.new_zeros(b, H, P, Bm.shape[-1])
    entering = []
    for st, dec in zip(chunk_states.unbind(1), chunk_decay.unbind(2)):
        entering.append(state)
        state = state * dec[:, :, None, None] + st
    entering = torch.stack(entering, 1)                                      # (b, c, h, p, n)

    # 4. contribution of the entering state: exp(a_1+..+a_l) C_l . state
    y = y + torch.einsum('bclhn,bchpn,bhcl->bclhp', Cm, entering, torch.exp(a_cum))
    return y.reshape(b, c * chunk, H, P)[:, :L]


def ssd_sequential(X, a, Bm, Cm):
    """The plain recurrence, for the self-test of ssd_chunked."""
    b, L, H, P = X.shape
    h = X.new_zeros(b, H, P, Bm.shape[-1])
    ys = []
    for t in range(L):
        h = h * torch.exp(a[:, t])[:, :, None, None] + X[:, t].unsqueeze(-1) * Bm[:, t].unsqueeze(2)
        ys.append(torch.einsum('bhpn,bhn->bhp', h, Cm[:, t]))
    return torch.stack(ys, 1)


class GroupedGatedRMSNorm(nn.Module):
    """rmsnorm(y * silu(z)) * w with the mean square taken per group of
    group_size channels (state-spaces RMSNormGated(group_size=d_inner/ngroups),
    norm_before_gate=False)."""

    def __init__(self, dim, group_size, eps=1e-5):
        super().__init__()
        self.group_size, self.eps = group_size, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, y, z):
        g = y * F.silu(z)
        shp = g.shape
        g = g.reshape(*shp[:-1], shp[-1] // self.group_size, self.group_size)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return g.reshape(shp) * self.weight


class Mamba2Mixer(nn.Module):
    def __init__(self, d_model, d_state=32, d_conv=4, expand=2, headdim=32, ngroups=2, chunk_size=64,
                 A_init_range=(1, 16)):
        super().__init__()
        di = expand * d_model
        self.d_inner, self.d_state, self.headdim, self.ngroups = di, d_state, headdim, ngroups
        self.nheads = di // headdim
        self.chunk_size = chunk_size
        self.conv_dim = di + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, 2 * di + 2 * ngroups * d_state + self.nheads, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim,
                                padding=d_conv - 1, bias=True)
        # state-spaces initialisation: dt_bias = softplus^-1(dt), dt log-uniform
        # in [1e-3, 1e-1]; A = -U(1, 16) per head; D = 1.
        self.dt_bias = nn.Parameter(init_dt_bias(self.nheads))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(*A_init_range)))
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = GroupedGatedRMSNorm(di, di // ngroups)
        self.out_proj = nn.Linear(di, d_model, bias=False)

    def forward(self, h):
        b, L, _ = h.shape
        di, N, G, H, P = self.d_inner, self.d_state, self.ngroups, self.nheads, self.headdim
        z, xBC, dt = torch.split(self.in_proj(h), [di, self.conv_dim, H], dim=-1)
        xBC = F.silu(causal_depthwise_conv(xBC, self.conv1d))
        x, Bm, Cm = torch.split(xBC, [di, G * N, G * N], dim=-1)
        dt = F.softplus(dt + self.dt_bias)          # time_step_limit (0, inf): no clamp
        A = -torch.exp(self.A_log)
        x = x.reshape(b, L, H, P)
        # head k reads group k // (H/G)
        Bm = Bm.reshape(b, L, G, N).repeat_interleave(H // G, dim=2)
        Cm = Cm.reshape(b, L, G, N).repeat_interleave(H // G, dim=2)
        y = ssd_chunked(x * dt.unsqueeze(-1), dt * A, Bm, Cm, self.chunk_size)
        y = y + x * self.D[:, None]
        y = self.norm(y.reshape(b, L, di), z)
        return self.out_proj(y)


# ---------------------------------------------------------------------------
# Language model (mixer_seq_simple.MixerModel + tied lm_head)
# ---------------------------------------------------------------------------

class Block(nn.Module):
    def __init__(self, d_model, mixer):
        super().__init__()
        self.norm = RMSNorm(d_model)
        self.mixer = mixer

    def forward(self, h, residual):
        residual = h if residual is None else h + residual
        return self.mixer(self.norm(residual)), residual


class ByteMamba(nn.Module):
    def __init__(self, arch, d_model, n_layer, vocab, mixer_kwargs):
        super().__init__()
        self.arch = arch
        self.embeddings = nn.Embedding(vocab, d_model)
        make = Mamba1Mixer if arch == 'mamba' else Mamba2Mixer
        self.layers = nn.ModuleList([Block(d_model, make(d_model, **mixer_kwargs)) for _ in range(n_layer)])
        self.norm_f = RMSNorm(d_model)
        # state-spaces _init_weights: embedding N(0, 0.02); out_proj (the last
        # matrix of each residual branch) kaiming-uniform scaled by 1/sqrt(n_layer).
        nn.init.normal_(self.embeddings.weight, std=0.02)
        for blk in self.layers:
            nn.init.kaiming_uniform_(blk.mixer.out_proj.weight, a=math.sqrt(5))
            with torch.no_grad():
                blk.mixer.out_proj.weight /= math.sqrt(n_layer)

    def forward(self, ids):
        h, residual = self.embeddings(ids), None
        for blk in self.layers:
            h, residual = blk(h, residual)
        h = self.norm_f(h + residual)
        return F.linear(h, self.embeddings.weight)  # tied head

    def hf_state(self):
        """Canonical Hugging Face tensor names -> float32 numpy arrays."""
        out = {'backbone.embeddings.weight': self.embeddings.weight}
        for i, blk in enumerate(self.layers):
            p, m = f'backbone.layers.{i}.', f'backbone.layers.{i}.mixer.'
            out[p + 'norm.weight'] = blk.norm.weight
            mx = blk.mixer
            out[m + 'in_proj.weight'] = mx.in_proj.weight
            out[m + 'conv1d.weight'] = mx.conv1d.weight           # [C, 1, K]
            out[m + 'conv1d.bias'] = mx.conv1d.bias
            if self.arch == 'mamba':
                out[m + 'x_proj.weight'] = mx.x_proj.weight
                out[m + 'dt_proj.weight'] = mx.dt_proj.weight
                out[m + 'dt_proj.bias'] = mx.dt_proj.bias
                out[m + 'A_log'] = mx.A_log
                out[m + 'D'] = mx.D
            else:
                out[m + 'dt_bias'] = mx.dt_bias
                out[m + 'A_log'] = mx.A_log
                out[m + 'D'] = mx.D
                out[m + 'norm.weight'] = mx.norm.weight
            out[m + 'out_proj.weight'] = mx.out_proj.weight
        out['backbone.norm_f.weight'] = self.norm_f.weight
        return {k: v.detach().to(torch.float32).cpu().numpy() for k, v in out.items()}


SPECS = {
    'mamba1': dict(arch='mamba', dir='mamba1-bytes', d_model=128, n_layer=4,
                   mixer=dict(d_state=16, d_conv=4, expand=2, dt_rank=8)),
    'mamba2': dict(arch='mamba2', dir='mamba2-bytes', d_model=128, n_layer=4,
                   mixer=dict(d_state=32, d_conv=4, expand=2, headdim=32, ngroups=2, chunk_size=64)),
}


def hf_config(spec, vocab):
    d, m = spec['d_model'], spec['mixer']
    di = m['expand'] * d
    common = dict(
        hidden_size=d, num_hidden_layers=spec['n_layer'], vocab_size=vocab,
        state_size=m['d_state'], conv_kernel=m['d_conv'], expand=m['expand'],
        layer_norm_epsilon=1e-5, use_bias=False, use_conv_bias=True, hidden_act='silu',
        residual_in_fp32=True, tie_word_embeddings=True, torch_dtype='float32',
        time_step_min=0.001, time_step_max=0.1, time_step_floor=1e-4,
    )
    if spec['arch'] == 'mamba':
        return dict(architectures=['MambaForCausalLM'], model_type='mamba', **common,
                    intermediate_size=di, time_step_rank=m['dt_rank'],
                    time_step_scale=1.0, time_step_init_scheme='random')
    return dict(architectures=['Mamba2ForCausalLM'], model_type='mamba2', **common,
                num_heads=di // m['headdim'], head_dim=m['headdim'], n_groups=m['ngroups'],
                chunk_size=m['chunk_size'], rms_norm=True, norm_before_gate=False,
                time_step_limit=[0.0, float('inf')])


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

def write_safetensors(path, tensors):
    """safetensors: u64 LE header length, JSON header (dtype, shape,
    data_offsets relative to the data start), header padded with spaces to a
    multiple of 8, then the raw little-endian data in header order."""
    header, blobs, off = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype='<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(arr.shape), 'data_offsets': [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hb = json.dumps(header, separators=(',', ':')).encode('utf-8')
    hb += b' ' * ((-len(hb)) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        assert info['dtype'] == 'F32'
        s, e = info['data_offsets']
        out[name] = np.frombuffer(raw[8 + n + s:8 + n + e], dtype='<f4').reshape(info['shape'])
    return out


def gpt2_byte_chars():
    """GPT-2's byte -> printable unicode character map (byte-level BPE)."""
    keep = list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def byte_tokenizer_json():
    """BPE without merges over the 256 byte characters: id = byte value."""
    vocab = {ch: b for b, ch in gpt2_byte_chars().items()}
    byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False}
    return {
        'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': [],
        'normalizer': None, 'pre_tokenizer': byte_level, 'post_processor': None, 'decoder': byte_level,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False,
                  'ignore_merges': False, 'vocab': vocab, 'merges': []},
    }


def write_json(path, obj):
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)  # float('inf') -> Infinity, as transformers writes
        f.write('\n')


# ---------------------------------------------------------------------------
# Evaluation and training
# ---------------------------------------------------------------------------

@torch.no_grad()
def window_nll(model, data, dtype):
    """Mean next-byte NLL (nats) of `data` (uint8 array) as one window: bytes
    1..n-1 predicted from their prefixes."""
    m = model.to(dtype)
    ids = torch.from_numpy(data.astype(np.int64)).unsqueeze(0)
    logits = m(ids)[0, :-1].to(torch.float64)
    nll = F.cross_entropy(logits, ids[0, 1:], reduction='mean').item()
    model.to(torch.float32)
    return nll


def self_test():
    """The chunked SSD equals the plain recurrence; the Mamba-1 scan equals its
    closed form (float64, random inputs); the conv's last tap is the current token."""
    g = torch.Generator().manual_seed(1)
    b, L, H, P, N = 2, 150, 4, 3, 5
    X = torch.randn(b, L, H, P, generator=g, dtype=torch.float64)
    a = -torch.rand(b, L, H, generator=g, dtype=torch.float64) * 2
    Bm = torch.randn(b, L, H, N, generator=g, dtype=torch.float64)
    Cm = torch.randn(b, L, H, N, generator=g, dtype=torch.float64)
    err = (ssd_chunked(X, a, Bm, Cm, 16) - ssd_sequential(X, a, Bm, Cm)).abs().max().item()
    assert err < 1e-10, f'ssd_chunked differs from the recurrence by {err}'
    u = torch.randn(b, 40, 6, generator=g, dtype=torch.float64)
    dl = torch.rand(b, 40, 6, generator=g, dtype=torch.float64)
    A = -torch.rand(6, N, generator=g, dtype=torch.float64) * 4
    B1 = torch.randn(b, 40, N, generator=g, dtype=torch.float64)
    C1 = torch.randn(b, 40, N, generator=g, dtype=torch.float64)
    err = (selective_scan(u, dl, A, B1, C1) - selective_scan_quadratic(u, dl, A, B1, C1)).abs().max().item()
    assert err < 1e-10, f'selective_scan differs from the closed form by {err}'
    # The conv: w[K-1] multiplies the current token.
    conv = nn.Conv1d(1, 1, 4, padding=3, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[1.0, 10.0, 100.0, 1000.0]]]))
    x = torch.tensor([[[1.0], [0.0], [0.0], [0.0], [0.0]]], dtype=torch.float64)
    assert causal_depthwise_conv(x, conv)[0, :, 0].tolist() == [1000.0, 100.0, 10.0, 1.0, 0.0]
    print('self-test passed: chunked SSD = recurrence, scan = closed form, causal conv taps', flush=True)


def lr_at(step, steps, peak, warmup, floor_frac=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return peak * (floor_frac + (1 - floor_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def train_steps(model, decays, args, train, heldout, np_rng, label, report=None):
    """AdamW (weight decay on the parameters `decays(name, p)` picks) over
    args.steps batches of args.batch random windows of args.seq_len + 1 bytes
    of `train`, the learning rate of lr_at, gradients clipped at 1.0; a line
    every 25 steps, with the held-out window's perplexity (and `report()`'s
    text) every args.eval_every. Returns the training time in seconds and
    every step's loss."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if decays(name, p) else no_decay).append(p)
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': args.weight_decay},
                             {'params': no_decay, 'weight_decay': 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    steps, B, L = args.steps, args.batch, args.seq_len
    eval_bytes = heldout[:WINDOW]
    t0 = time.time()
    hist = []
    for step in range(steps):
        lr = lr_at(step, steps, args.lr, args.warmup)
        for gparam in opt.param_groups:
            gparam['lr'] = lr
        offs = np_rng.integers(0, len(train) - L - 1, size=B)
        batch = np.stack([train[o:o + L + 1] for o in offs]).astype(np.int64)
        xb, yb = torch.from_numpy(batch[:, :-1]), torch.from_numpy(batch[:, 1:])
        logits = model(xb)
        loss = F.cross_entropy(logits.reshape(-1, 256), yb.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        opt.step()
        hist.append(loss.item())
        if step % 25 == 0 or step == steps - 1:
            el = time.time() - t0
            msg = (f'[{label}] step {step:5d}/{steps} loss {np.mean(hist[-25:]):.4f} lr {lr:.2e} '
                   f'|g| {gn:.2f} {el:6.0f}s ({el / (step + 1):.2f} s/step)')
            if args.eval_every and step > 0 and (step % args.eval_every == 0 or step == steps - 1):
                model.eval()
                nll = window_nll(model, eval_bytes, torch.float32)
                model.train()
                msg += f' | held-out window ppl {math.exp(nll):.3f}'
                if report:
                    msg += report()
            print(msg, flush=True)
    return time.time() - t0, hist


def train_one(key, args, train, heldout, out_dir):
    spec = SPECS[key]
    torch.manual_seed(args.seed)
    np_rng = np.random.default_rng(args.seed)
    model = ByteMamba(spec['arch'], spec['d_model'], spec['n_layer'], 256, spec['mixer'])
    n_params = sum(p.numel() for p in model.parameters())
    print(f'[{key}] {n_params} parameters', flush=True)

    # matrices (embedding, in/x/dt/out projections) decay; norms, biases,
    # conv, A_log, D, dt_bias do not (state-spaces: _no_weight_decay on A_log, D, dt_bias)
    train_seconds, hist = train_steps(model, lambda name, p: p.dim() == 2 and name.endswith('weight'),
                                      args, train, heldout, np_rng, key)
    return save_and_measure(model, out_dir, spec['dir'], spec['arch'], hf_config(spec, 256), key, n_params, heldout,
                            args, train_seconds, hist)


def save_and_measure(model, out_dir, dir_name, model_type, config, label, n_params, heldout, args, train_seconds,
                     hist, extra_report=None):
    """Saves a trained fixture (config.json, model.safetensors in float32, read back and compared,
    tokenizer.json) in out_dir / dir_name and returns its metrics: the float64 window perplexity
    the node-mamba test compares against, float32 ones, and the training run's settings.
    extra_report(): more lines to print after the metrics (evaluated in float64 mode)."""
    model.eval()
    eval_bytes = heldout[:WINDOW]
    d = os.path.join(out_dir, dir_name)
    os.makedirs(d, exist_ok=True)
    state = model.hf_state()
    write_safetensors(os.path.join(d, 'model.safetensors'), state)
    back = read_safetensors(os.path.join(d, 'model.safetensors'))
    assert list(back) == list(state) and all(np.array_equal(back[k], state[k]) for k in state)
    write_json(os.path.join(d, 'config.json'), config)
    write_json(os.path.join(d, 'tokenizer.json'), byte_tokenizer_json())

    # Metrics from exactly the saved float32 weights (widened exactly to float64).
    t1 = time.time()
    nll64 = window_nll(model, eval_bytes, torch.float64)
    extra = extra_report() if extra_report else None
    nll32 = window_nll(model, eval_bytes, torch.float32)
    full32 = window_nll(model, heldout, torch.float32)
    print(f'[{label}] window ({WINDOW} bytes) ppl float64 {math.exp(nll64):.6f} float32 {math.exp(nll32):.6f}; '
          f'whole held-out ({len(heldout)} bytes, one window, float32) ppl {math.exp(full32):.4f} '
          f'[{time.time() - t1:.0f}s]', flush=True)
    if extra:
        print(f'[{label}] {extra}', flush=True)
    return {
        'dir': dir_name,
        'model_type': model_type,
        'parameters': n_params,
        'window_bytes': WINDOW,
        'window_predictions': WINDOW - 1,
        'pytorch_window_nll': nll64,
        'pytorch_window_ppl': math.exp(nll64),
        'pytorch_window_ppl_float32': math.exp(nll32),
        'pytorch_heldout_ppl': math.exp(full32),
        'heldout_bytes': int(len(heldout)),
        'train': {
            'seed': args.seed, 'steps': args.steps, 'batch': args.batch, 'seq_len': args.seq_len, 'lr': args.lr,
            'warmup': args.warmup, 'schedule': 'linear warmup, cosine to 0.1 x peak',
            'optimizer': 'AdamW betas (0.9, 0.95), weight decay %g on matrices' % args.weight_decay,
            'grad_clip': 1.0, 'threads': torch.get_num_threads(),
            'wall_seconds': round(train_seconds, 1),
            'final_train_loss_mean_last_100': float(np.mean(hist[-100:])),
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--corpus', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--model', choices=['mamba1', 'mamba2', 'all'], default='all')
    ap.add_argument('--steps', type=int, default=None, help='default: 1000 (mamba1), 900 (mamba2)')
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seq-len', type=int, default=256)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--warmup', type=int, default=50)
    ap.add_argument('--weight-decay', type=float, default=0.1)
    ap.add_argument('--seed', type=int, default=1234)
    ap.add_argument('--threads', type=int, default=1,
                    help='1: on a shared, oversubscribed machine 2 threads were ~6x slower (each op waits for both)')
    ap.add_argument('--eval-every', type=int, default=250)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    self_test()

    raw = open(args.corpus, 'rb').read()
    data = np.frombuffer(raw, dtype=np.uint8)
    n_train = len(data) * 9 // 10
    train, heldout = data[:n_train], data[n_train:]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'heldout.txt'), 'wb') as f:
        f.write(heldout.tobytes())
    with open(os.path.join(args.out, 'calibration.txt'), 'wb') as f:
        f.write(train[:CALIBRATION_BYTES].tobytes())

    # Unigram baseline: train-part byte frequencies (add-one), on the window.
    counts = np.bincount(train, minlength=256).astype(np.float64) + 1
    logp = np.log(counts / counts.sum())
    unigram_ppl = math.exp(-logp[heldout[1:WINDOW]].mean())

    metrics_path = os.path.join(args.out, 'metrics.json')
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    metrics['corpus'] = {
        'name': os.path.basename(args.corpus), 'sha256': hashlib.sha256(raw).hexdigest(), 'bytes': len(raw),
        'train_bytes': int(n_train), 'heldout_bytes': int(len(heldout)),
        'heldout_sha256': hashlib.sha256(heldout.tobytes()).hexdigest(),
    }
    metrics['metric'] = ('perplexity = exp(mean next-byte NLL in nats) over the first %d bytes of heldout.txt '
                         'as one window (bytes 1..%d predicted from their prefixes), PyTorch float64' % (WINDOW, WINDOW - 1))
    metrics['unigram_window_ppl'] = unigram_ppl
    metrics['pytorch'] = torch.__version__
    metrics.setdefault('models', {})
    print(f'corpus {len(raw)} bytes: train {n_train}, held out {len(heldout)}; '
          f'unigram ppl on the window {unigram_ppl:.3f}', flush=True)

    keys = ['mamba1', 'mamba2'] if args.model == 'all' else [args.model]
    for key in keys:
        run = argparse.Namespace(**vars(args))
        if run.steps is None:
            run.steps = 1000 if key == 'mamba1' else 900
        metrics['models'][SPECS[key]['dir']] = train_one(key, run, train, heldout, args.out)
        metrics['models'] = dict(sorted(metrics['models'].items()))
        write_json(metrics_path, metrics)
    return 0


if __name__ == '__main__':
    sys.exit(main())
