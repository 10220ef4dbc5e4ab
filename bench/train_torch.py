"""PyTorch peer for the training and real-size benchmarks: a Llama / Qwen2 decoder (RMSNorm, rotary, grouped-query
attention with HF's repeat_kv, optional q/k/v bias, SwiGLU, tied head) in float32 on the CPU, as a PyTorch user
would run it, with PEFT-style LoRA (kaiming A, zero B, scaling alpha / r) on the chosen linears, AdamW on the LoRA
weights only (or every weight), and greedy decoding with a KV cache. Random weights: only the shapes matter.

Usage: python3 train_torch.py --mode lora|full|decode --threads N --steps S --hidden H --layers L --heads NH
           --kv-heads NKV --mlp F --vocab V --batch B --seq T --rank R --alpha A --targets qv|all [--qkv-bias]
           [--rope-theta X] [--prompt P --new-tokens K]
Prints one JSON line: mode, threads, median step seconds (or decode tokens/s), peak RSS bytes, parameter counts.
"""
import argparse, json, math, os, resource, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoraLinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / rank

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def rotary(x, cos, sin):  # x [B, H, T, D]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        h, d = a.hidden, a.hidden // a.heads
        self.heads, self.kv_heads, self.d = a.heads, a.kv_heads, d
        self.input_layernorm = RMSNorm(h)
        self.q_proj = nn.Linear(h, a.heads * d, bias=a.qkv_bias)
        self.k_proj = nn.Linear(h, a.kv_heads * d, bias=a.qkv_bias)
        self.v_proj = nn.Linear(h, a.kv_heads * d, bias=a.qkv_bias)
        self.o_proj = nn.Linear(a.heads * d, h, bias=False)
        self.post_attention_layernorm = RMSNorm(h)
        self.gate_proj = nn.Linear(h, a.mlp, bias=False)
        self.up_proj = nn.Linear(h, a.mlp, bias=False)
        self.down_proj = nn.Linear(a.mlp, h, bias=False)

    def forward(self, x, cos, sin, cache=None):
        b, t, _ = x.shape
        y = self.input_layernorm(x)
        q = self.q_proj(y).view(b, t, self.heads, self.d).transpose(1, 2)
        k = self.k_proj(y).view(b, t, self.kv_heads, self.d).transpose(1, 2)
        v = self.v_proj(y).view(b, t, self.kv_heads, self.d).transpose(1, 2)
        q, k = rotary(q, cos, sin), rotary(k, cos, sin)
        if cache is not None:
            if 'k' in cache:
                k, v = torch.cat((cache['k'], k), 2), torch.cat((cache['v'], v), 2)
            cache['k'], cache['v'] = k, v
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)  # HF's repeat_kv
        s = k.shape[2]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.d)
        mask = torch.triu(torch.full((t, s), float('-inf')), diagonal=s - t + 1)
        o = (F.softmax(att + mask, dim=-1) @ v).transpose(1, 2).reshape(b, t, self.heads * self.d)
        x = x + self.o_proj(o)
        y = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))


class Decoder(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.hidden)
        nn.init.normal_(self.embed_tokens.weight, std=0.02)  # as transformers' initializer_range
        self.layers = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.hidden)
        d = a.hidden // a.heads
        inv = 1.0 / (a.rope_theta ** (torch.arange(0, d, 2).float() / d))
        ang = torch.outer(torch.arange(a.seq + a.new_tokens + a.prompt).float(), inv)
        self.register_buffer('cos', torch.cat((ang, ang), -1).cos())
        self.register_buffer('sin', torch.cat((ang, ang), -1).sin())

    def forward(self, ids, caches=None, start=0):
        x = self.embed_tokens(ids)
        t = ids.shape[1]
        cos, sin = self.cos[start:start + t], self.sin[start:start + t]
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, None if caches is None else caches[i])
        return self.norm(x) @ self.embed_tokens.weight.T  # tied head


TARGETS = {'qv': ['q_proj', 'v_proj'], 'all': ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']}


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def train(a, model):
    total = sum(t.numel() for t in model.parameters())
    if a.mode == 'lora':
        for prm in model.parameters():
            prm.requires_grad_(False)
        for layer in model.layers:
            for name in TARGETS[a.targets]:
                setattr(layer, name, LoraLinear(getattr(layer, name), a.rank, a.alpha))
    params = [t for t in model.parameters() if t.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
    times = []
    for step in range(a.steps + 1):
        start = time.perf_counter()
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step > 0:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {'stepSeconds': step_s, 'tokensPerSecond': a.batch * a.seq / step_s, 'parameters': total,
            'trainableParameters': sum(t.numel() for t in params), 'loss': float(loss)}


@torch.no_grad()
def decode(a, model):
    prompt = torch.tensor([[(i * 37) % a.vocab for i in range(a.prompt)]])
    def run():
        caches = [{} for _ in model.layers]
        logits = model(prompt, caches, 0)
        token = logits[:, -1].argmax(-1, keepdim=True)
        started = time.perf_counter()
        for i in range(a.new_tokens - 1):
            logits = model(token, caches, a.prompt + i)
            token = logits[:, -1].argmax(-1, keepdim=True)
        return (a.new_tokens - 1) / (time.perf_counter() - started)
    run()  # warm-up
    return {'decodeTokensPerSecond': max(run() for _ in range(2)), 'parameters': sum(t.numel() for t in model.parameters())}


def main():
    p = argparse.ArgumentParser()
    for name, default in [('threads', 2), ('steps', 5), ('hidden', 384), ('layers', 6), ('heads', 6), ('kv-heads', 0),
                          ('mlp', 1024), ('vocab', 4096), ('batch', 8), ('seq', 128), ('rank', 8), ('alpha', 0),
                          ('prompt', 16), ('new-tokens', 0)]:
        p.add_argument(f'--{name}', type=int, default=default)
    p.add_argument('--rope-theta', type=float, default=10000.0)
    p.add_argument('--mode', choices=['lora', 'full', 'decode'], default='lora')
    p.add_argument('--targets', choices=sorted(TARGETS), default='qv')
    p.add_argument('--qkv-bias', action='store_true')
    a = p.parse_args()
    a.kv_heads = a.kv_heads or a.heads
    a.alpha = a.alpha or 2 * a.rank
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Decoder(a).float()
    report = decode(a, model) if a.mode == 'decode' else train(a, model)
    print(json.dumps({'mode': a.mode, 'threads': a.threads, 'torch': torch.__version__,
                      'blas': os.path.realpath('/usr/lib/x86_64-linux-gnu/libblas.so.3'), 'peakRssBytes': peak_rss(), **report}))


if __name__ == '__main__':
    main()
