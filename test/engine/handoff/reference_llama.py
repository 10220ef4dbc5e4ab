"""Runs an exported run's train.py loop (its batch order, step composition, loss, clipping, AdamW and schedule) on a
llama written here in plain PyTorch (no transformers, no PEFT), starting from the export's initial_adapter, on the
CPU in float32. The test compares its per-step losses with the engine's own run of the same settings.

Usage: python3 reference_llama.py BUNDLE_DIR MODEL_DIR  -> one JSON object: {"log_history": [...], "status": ...}
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = bytearray(f.read())
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        t = torch.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]]) if end > begin else torch.zeros(0)
        out[name] = t.reshape(entry["shape"]).float()
    return out


class Output:
    def __init__(self, logits):
        self.logits = logits


class ReferenceLlama(torch.nn.Module):
    """Llama (RMSNorm, rotary as rotate_half, grouped-query attention, SwiGLU) with LoRA on the adapter's modules."""

    def __init__(self, model_dir, adapter_dir):
        super().__init__()
        self.c = json.load(open(os.path.join(model_dir, "config.json")))
        self.w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        acfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
        tensors = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
        self.lora = torch.nn.ParameterDict()
        self.scaling = {}
        for key, t in tensors.items():
            path = key[len("base_model.model."):].rsplit(".lora_", 1)[0]
            which = "A" if ".lora_A." in key else "B"
            self.lora[path.replace(".", "_") + "_" + which] = torch.nn.Parameter(t.clone())
            r = t.shape[0] if which == "A" else t.shape[1]
            self.scaling[path] = acfg["lora_alpha"] / (math.sqrt(r) if acfg["use_rslora"] else r)

    def linear(self, path, x):
        y = x @ self.w[path + ".weight"].T
        a = self.lora[path.replace(".", "_") + "_A"] if path.replace(".", "_") + "_A" in self.lora else None
        if a is not None:
            b = self.lora[path.replace(".", "_") + "_B"]
            y = y + (x @ a.T @ b.T) * self.scaling[path]
        return y

    def norm(self, name, x):
        return self.w[name + ".weight"] * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["rms_norm_eps"])

    def forward(self, input_ids, attention_mask=None):
        c = self.c
        heads, kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
        d = c.get("head_dim") or c["hidden_size"] // heads
        b, t = input_ids.shape
        x = self.w["model.embed_tokens.weight"][input_ids]
        inv = 1.0 / (c.get("rope_theta", 10000.0) ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        freqs = torch.outer(torch.arange(t, dtype=torch.float32), inv)
        cos, sin = torch.cat((freqs, freqs), -1).cos(), torch.cat((freqs, freqs), -1).sin()

        def rope(q):
            q1, q2 = q[..., : d // 2], q[..., d // 2:]
            return q * cos + torch.cat((-q2, q1), -1) * sin

        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        for i in range(c["num_hidden_layers"]):
            p = "model.layers.%d." % i
            y = self.norm(p + "input_layernorm", x)
            q = self.linear(p + "self_attn.q_proj", y).view(b, t, heads, d).transpose(1, 2)
            k = self.linear(p + "self_attn.k_proj", y).view(b, t, kv_heads, d).transpose(1, 2)
            v = self.linear(p + "self_attn.v_proj", y).view(b, t, kv_heads, d).transpose(1, 2)
            k, v = k.repeat_interleave(heads // kv_heads, 1), v.repeat_interleave(heads // kv_heads, 1)
            att = F.softmax((rope(q) @ rope(k).transpose(-1, -2)) / math.sqrt(d) + mask, -1)
            x = x + self.linear(p + "self_attn.o_proj", (att @ v).transpose(1, 2).reshape(b, t, heads * d))
            y = self.norm(p + "post_attention_layernorm", x)
            x = x + self.linear(p + "mlp.down_proj", F.silu(self.linear(p + "mlp.gate_proj", y)) * self.linear(p + "mlp.up_proj", y))
        return Output(self.linear("lm_head", self.norm("model.norm", x)))


def main():
    bundle, model_dir = sys.argv[1], sys.argv[2]
    sys.path.insert(0, bundle)
    import train as script  # the exported train.py

    torch.set_num_threads(1)
    run = script.read_json(os.path.join(bundle, "run.json"))
    h = run["hyperparameters"]
    model = ReferenceLlama(model_dir, os.path.join(bundle, "initial_adapter"))
    params = list(model.lora.values())
    optimizer = torch.optim.AdamW(params, lr=h["learning_rate"], betas=(h["adam_beta1"], h["adam_beta2"]), eps=h["adam_epsilon"], weight_decay=h["weight_decay"])
    train_rows = script.read_jsonl(os.path.join(bundle, "data", "train.jsonl"))
    val_rows = script.read_jsonl(os.path.join(bundle, "data", "val.jsonl"))
    saved = []
    status, log_history, best, _ = script.train(model, params, optimizer, script.SingleProcess(), run, train_rows, val_rows, saved.append, bundle, per_device=h["per_device_train_batch_size"])
    machine = script.machine(script.SingleProcess(), None)  # what run_info.json records of this machine
    print(json.dumps({"status": status, "log_history": log_history, "best": best, "saved": len(saved), "machine": machine}))


if __name__ == "__main__":
    main()
