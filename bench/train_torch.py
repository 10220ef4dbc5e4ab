"""PyTorch reference for bench/train.bench.ts: the same Llama shape, batch and sequence length, LoRA r=8 on q and v
(PEFT's init and scaling), AdamW on the LoRA weights only, or full fine-tuning. CPU, OpenBLAS, N threads.

Usage: python3 train_torch.py --mode lora|full --threads 2 --steps 5 --hidden 384 --layers 6 --heads 6 --mlp 1024
           --vocab 4096 --batch 8 --seq 128 --rank 8
Prints one JSON line: mode, threads, median step seconds, tokens/s, peak RSS bytes, parameter counts.
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
        h = a.hidden
        self.heads = a.heads
        self.input_layernorm = RMSNorm(h)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(h, h, bias=False) for _ in range(4))
        self.post_attention_layernorm = RMSNorm(h)
        self.gate_proj = nn.Linear(h, a.mlp, bias=False)
        self.up_proj = nn.Linear(h, a.mlp, bias=False)
        self.down_proj = nn.Linear(a.mlp, h, bias=False)

    def forward(self, x, cos, sin):
        b, t, h = x.shape
        d = h // self.heads
        y = self.input_layernorm(x)
        q = self.q_proj(y).view(b, t, self.heads, d).transpose(1, 2)
        k = self.k_proj(y).view(b, t, self.heads, d).transpose(1, 2)
        v = self.v_proj(y).view(b, t, self.heads, d).transpose(1, 2)
        q, k = rotary(q, cos, sin), rotary(k, cos, sin)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        mask = torch.triu(torch.full((t, t), float('-inf')), diagonal=1)
        o = (F.softmax(att + mask, dim=-1) @ v).transpose(1, 2).reshape(b, t, h)
        x = x + self.o_proj(o)
        y = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.hidden)
        nn.init.normal_(self.embed_tokens.weight, std=0.02)  # as transformers' initializer_range
        self.layers = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.hidden)
        d = a.hidden // a.heads
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
        ang = torch.outer(torch.arange(a.seq).float(), inv)
        self.register_buffer('cos', torch.cat((ang, ang), -1).cos())
        self.register_buffer('sin', torch.cat((ang, ang), -1).sin())

    def forward(self, ids):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin)
        return self.norm(x) @ self.embed_tokens.weight.T  # tied head


def main():
    p = argparse.ArgumentParser()
    for name, default in [('threads', 2), ('steps', 5), ('hidden', 384), ('layers', 6), ('heads', 6), ('mlp', 1024),
                          ('vocab', 4096), ('batch', 8), ('seq', 128), ('rank', 8)]:
        p.add_argument(f'--{name}', type=int, default=default)
    p.add_argument('--mode', choices=['lora', 'full'], default='lora')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a)
    total = sum(t.numel() for t in model.parameters())
    if a.mode == 'lora':
        for prm in model.parameters():
            prm.requires_grad_(False)
        for layer in model.layers:
            layer.q_proj = LoraLinear(layer.q_proj, a.rank, 2 * a.rank)
            layer.v_proj = LoraLinear(layer.v_proj, a.rank, 2 * a.rank)
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
    print(json.dumps({
        'mode': a.mode, 'threads': a.threads, 'torch': torch.__version__, 'blas': os.path.realpath('/usr/lib/x86_64-linux-gnu/libblas.so.3'),
        'stepSeconds': step_s, 'tokensPerSecond': a.batch * a.seq / step_s,
        'peakRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        'parameters': total, 'trainableParameters': sum(t.numel() for t in params), 'loss': float(loss),
    }))


if __name__ == '__main__':
    main()
