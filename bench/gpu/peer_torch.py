"""The PyTorch peer of the GPU check's LoRA step (bench/gpu/step.ts): the same Qwen2 architecture and shape
(RMSNorm, rotary with theta 1e6, grouped-query attention with q/k/v biases, SwiGLU, tied embedding), LoRA on all
seven linear kinds with PEFT's init and scaling (alpha / r), AdamW on the LoRA weights only, masked-free mean
cross-entropy, eager fp32 with TF32 off. Weights are random (std 0.02): speed does not depend on them.

Usage: python3 peer_torch.py [--device cuda|cpu] [--shape qwen2.5-0.5b|tiny] [--steps 5]
Prints one JSON line: device, name, torch, stepMs, medianStepMs, losses, peakBytes.
"""
import argparse, json, math, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F

from train_torch import RMSNorm, rotary  # bench/train_torch.py, packed beside this file

SHAPES = {
    'qwen2.5-0.5b': dict(hidden=896, layers=24, heads=14, kv_heads=2, mlp=4864, vocab=151936, batch=2, seq=256, rank=16, alpha=32),
    'tiny': dict(hidden=64, layers=2, heads=4, kv_heads=2, mlp=128, vocab=512, batch=2, seq=16, rank=4, alpha=8),
}


class LoraLinear(nn.Module):
    def __init__(self, fan_in, fan_out, bias, rank, alpha):
        super().__init__()
        self.base = nn.Linear(fan_in, fan_out, bias=bias)
        self.lora_A = nn.Linear(fan_in, rank, bias=False)
        self.lora_B = nn.Linear(rank, fan_out, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / rank

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


class Block(nn.Module):
    def __init__(self, s):
        super().__init__()
        h, d = s['hidden'], s['hidden'] // s['heads']
        lin = lambda i, o, bias=False: LoraLinear(i, o, bias, s['rank'], s['alpha'])
        self.heads, self.kv_heads, self.d = s['heads'], s['kv_heads'], d
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(h), RMSNorm(h)
        self.q_proj, self.k_proj, self.v_proj = lin(h, h, True), lin(h, s['kv_heads'] * d, True), lin(h, s['kv_heads'] * d, True)
        self.o_proj = lin(h, h)
        self.gate_proj, self.up_proj, self.down_proj = lin(h, s['mlp']), lin(h, s['mlp']), lin(s['mlp'], h)

    def forward(self, x, cos, sin, mask):
        b, t, h = x.shape
        y = self.input_layernorm(x)
        q = self.q_proj(y).view(b, t, self.heads, self.d).transpose(1, 2)
        k = self.k_proj(y).view(b, t, self.kv_heads, self.d).transpose(1, 2)
        v = self.v_proj(y).view(b, t, self.kv_heads, self.d).transpose(1, 2)
        q, k = rotary(q, cos, sin), rotary(k, cos, sin)
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        att = F.softmax((q @ k.transpose(-1, -2)) / math.sqrt(self.d) + mask, dim=-1)
        x = x + self.o_proj((att @ v).transpose(1, 2).reshape(b, t, h))
        y = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))


class Qwen2(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.embed_tokens = nn.Embedding(s['vocab'], s['hidden'])
        self.layers = nn.ModuleList(Block(s) for _ in range(s['layers']))
        self.norm = RMSNorm(s['hidden'])
        d = s['hidden'] // s['heads']
        inv = 1.0 / (1e6 ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        angles = torch.outer(torch.arange(s['seq'], dtype=torch.float64), inv)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer('cos', angles.cos().float(), persistent=False)
        self.register_buffer('sin', angles.sin().float(), persistent=False)
        self.register_buffer('mask', torch.triu(torch.full((s['seq'], s['seq']), float('-inf')), diagonal=1), persistent=False)

    def forward(self, ids):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        return self.norm(x) @ self.embed_tokens.weight.t()  # the tied head


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--device', default='cuda')
    p.add_argument('--shape', default='qwen2.5-0.5b', choices=sorted(SHAPES))
    p.add_argument('--steps', type=int, default=5)
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    s = SHAPES[a.shape]
    device = torch.device(a.device)
    model = Qwen2(s)
    for name, param in model.named_parameters():
        if param.dim() > 1 and 'lora_' not in name:
            nn.init.normal_(param, std=0.02)
    model.to(device)
    for name, param in model.named_parameters():
        param.requires_grad_('lora_' in name)  # the base is frozen, its norms too
    lora = [param for name, param in model.named_parameters() if 'lora_' in name]
    optimizer = torch.optim.AdamW(lora, lr=1e-4, weight_decay=0)
    ids = torch.randint(0, s['vocab'], (s['batch'], s['seq']), device=device)
    labels = torch.randint(0, s['vocab'], (s['batch'], s['seq']), device=device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

    def step():
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(ids).view(-1, s['vocab']), labels.view(-1))
        loss.backward()
        optimizer.step()
        value = loss.item()  # waits for the step, as the engine's read of its loss does
        sync()
        return (time.perf_counter() - start) * 1000, value

    losses = [step()[1]]  # the first step: allocations, kernel selection
    times = []
    for _ in range(a.steps):
        ms, value = step()
        times.append(ms)
        losses.append(value)
    print(json.dumps({
        'shape': a.shape,
        'device': device.type,
        'name': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
        'torch': torch.__version__,
        'stepMs': times,
        'medianStepMs': statistics.median(times),
        'losses': losses,
        'peakBytes': torch.cuda.max_memory_allocated(device) if device.type == 'cuda' else None,
    }))


if __name__ == '__main__':
    main()
