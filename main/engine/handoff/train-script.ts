/**
 * train.py of an exported run: the run Lorasmith would have done, on transformers + PEFT under accelerate. Kept as
 * text here (not a .py beside it) so the app's bundled host and the CLI write the same bytes; the tests compile it
 * with python3 and run its loop against the engine's on the tiny llama fixture.
 */
export const TRAIN_SCRIPT = String.raw`#!/usr/bin/env python3
"""Trains this exported Lorasmith run with transformers + PEFT, launched by accelerate (see README.md).

It is the run Lorasmith would have done, step for step:
  data/train.jsonl, val.jsonl  the engine's token ids and labels (chat template applied, prompt tokens -100),
                               its train / validation split, packing already applied;
  batch order                  the engine's seeded shuffle of the rows per epoch (hash_seed and Rng below);
  one optimizer step           up to gradient_accumulation_steps batches of per_device_train_batch_size rows of one
                               epoch; its loss is the token-weighted mean over all of the step's target tokens;
  optimizer                    AdamW (betas, epsilon and decoupled weight decay of run.json on every LoRA weight),
                               clipping by global norm, linear warmup then constant / linear / cosine decay;
  evaluation                   token-weighted validation loss every eval_steps and at the end; early stopping after
                               early_stopping_patience evaluations without improvement; keep_weights "best": the
                               adapter of the lowest validation loss is kept, "last": the last step's;
  initial weights              initial_adapter/ (the engine's seeded initialisation, or the parent adapter's).
On N processes each step's rows are shared out and each process's loss is scaled by N, so the averaged gradient is
the one-process gradient: the run is the same on one GPU or many. LoRA dropout draws its own masks here, so runs
agree step for step only with lora_dropout 0.
Writes OUTPUT/adapter (a PEFT adapter), OUTPUT/trainer_state.json (log_history as transformers' Trainer writes it),
OUTPUT/run_info.json (the outcome; the machines and GPUs of the processes, torch, CUDA, transformers, PEFT and
accelerate as they ran, which the import compares with requirements.txt's) and a copy of run.json. Import OUTPUT with
lorasmith import-run (or the app's Adapters view).
"""
import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
M32 = 0xFFFFFFFF
RESULT_FORMAT = "lorasmith-run-result/1"


def imul(a, b):
    return (a * b) & M32


def hash_seed(*parts):
    """The engine's 32-bit mix of integers (murmur3's finalizer over a running hash)."""
    h = 0x9E3779B9
    for part in parts:
        h = imul(h ^ (part & M32), 0x85EBCA6B)
        h ^= h >> 13
        h = imul(h, 0xC2B2AE35)
        h ^= h >> 16
    return h


class Rng:
    """mulberry32, drawn exactly as the engine draws it."""

    def __init__(self, seed):
        self.state = seed & M32

    def next(self):
        self.state = (self.state + 0x6D2B79F5) & M32
        t = self.state
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296.0

    def shuffle(self, items):
        out = list(items)
        for i in range(len(out) - 1, 0, -1):
            j = math.floor(self.next() * (i + 1))
            out[i], out[j] = out[j], out[i]
        return out


def epoch_batches(row_count, batch_size, seed, epoch):
    """Row indices of each batch of an epoch: the engine's seeded shuffle, cut into batch_size."""
    order = Rng(hash_seed(seed, 0xE90C, epoch)).shuffle(range(row_count))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def total_steps(row_count, h):
    if h["max_steps"] is not None:
        return h["max_steps"]
    batches = math.ceil(row_count / h["per_device_train_batch_size"])
    return math.ceil(batches / h["gradient_accumulation_steps"]) * h["num_train_epochs"]


def lr_at(step, h, total):
    """The learning rate of optimizer step step (0-based): transformers' get_*_schedule_with_warmup."""
    lr, warmup, kind = h["learning_rate"], h["warmup_steps"], h["lr_scheduler_type"]
    if step < warmup:
        return lr * step / max(1, warmup)
    if kind == "constant":
        return lr
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return lr * max(0.0, 1.0 - progress)
    return lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def plan_steps(row_count, h):
    """(step, epoch, fractional epoch after it, the step's batches of row indices) for every step of the run."""
    seed, size, accum = h["seed"], h["per_device_train_batch_size"], h["gradient_accumulation_steps"]
    epoch, in_epoch = 0, 0
    order = epoch_batches(row_count, size, seed, epoch)
    for step in range(total_steps(row_count, h)):
        if in_epoch >= len(order):
            epoch, in_epoch = epoch + 1, 0
            order = epoch_batches(row_count, size, seed, epoch)
        batches = order[in_epoch:in_epoch + accum]
        in_epoch += len(batches)
        yield step, epoch + in_epoch / max(1, len(order)), batches


def target_count(row):
    return sum(1 for label in row["labels"][1:] if label != -100)


def shard(items, rank, world, size):
    """This process's share of items in chunks of at most size; every process gets as many chunks (some empty),
    since ZeRO-3 and FSDP gather weights inside each forward pass and all processes must take part."""
    mine = items[rank::world]
    chunks = max(1, max(math.ceil(len(items[r::world]) / size) for r in range(world)))
    return [mine[i * size:(i + 1) * size] for i in range(chunks)]


def nll_sum(model, rows, pad_id, device):
    """Summed next-token cross entropy over the rows' labelled tokens (a scalar tensor)."""
    import torch

    if not rows:
        # A process with no rows this step still runs the model (see shard) and reaches every weight with zero.
        ids = torch.full((1, 2), pad_id, dtype=torch.long, device=device)
        return model(input_ids=ids).logits.float().sum() * 0.0
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for b, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[b, :n] = torch.tensor(row["input_ids"], dtype=torch.long)
        mask[b, :n] = 1
        labels[b, :n] = torch.tensor(row["labels"], dtype=torch.long)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    # position t predicts token t + 1: logits [B, T-1, V] against labels [B, T-1]
    logits = logits[:, :-1, :].float()
    targets = labels[:, 1:].to(device)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum")


class SingleProcess:
    """One process without accelerate: the same loop, e.g. to check it against the engine on a CPU."""

    rank, world, is_main, deepspeed = 0, 1, True, False

    def __init__(self, device="cpu"):
        self.device = device

    def backward(self, loss):
        loss.backward()

    def no_sync(self, model):
        return contextlib.nullcontext()

    def reduce_sum(self, value):
        return value

    def gather(self, value):
        return [value]

    def clip(self, model, params, max_norm):
        import torch

        return float(torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf")))

    def wait(self):
        pass


class AccelerateProcesses:
    """The processes accelerate launched (one GPU, DDP, DeepSpeed ZeRO or FSDP)."""

    def __init__(self, accelerator):
        from accelerate.utils import DistributedType

        self.accelerator = accelerator
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.is_main, self.device = accelerator.is_main_process, accelerator.device
        self.deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED

    def backward(self, loss):
        # Under DeepSpeed this also steps its engine (gradient clipping comes from the DeepSpeed config).
        self.accelerator.backward(loss)

    def no_sync(self, model):
        return self.accelerator.no_sync(model)

    def reduce_sum(self, value):
        import torch

        return float(self.accelerator.reduce(torch.tensor(float(value), device=self.device), reduction="sum"))

    def gather(self, value):
        """Every process's value, in process order, on every process."""
        from accelerate.utils import gather_object

        return gather_object([value])

    def clip(self, model, params, max_norm):
        if self.deepspeed:
            norm = model.get_global_grad_norm()
            return float(norm) if norm is not None else float("nan")
        return float(self.accelerator.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf")))

    def wait(self):
        self.accelerator.wait_for_everyone()


def evaluate(model, procs, rows, pad_id, size):
    """Token-weighted mean validation loss over all rows, in batches of size in file order."""
    import torch

    batches = [rows[i:i + size] for i in range(0, len(rows), size)]
    local = 0.0
    model.eval()
    with torch.no_grad():
        for chunk in shard(batches, procs.rank, procs.world, 1):
            local += float(nll_sum(model, chunk[0] if chunk else [], pad_id, procs.device))
    model.train()
    return procs.reduce_sum(local) / max(1, sum(target_count(r) for r in rows))


def train(model, params, optimizer, procs, run, train_rows, val_rows, save_adapter, output_dir, per_device=None, on_step=None):
    """The run's loop; returns (status, log_history, best). save_adapter(folder) writes the current adapter."""
    h = run["hyperparameters"]
    pad_id = run["tokenization"]["pad_id"]
    size = h["per_device_train_batch_size"]
    if procs.deepspeed:
        per_device = None  # DeepSpeed steps its engine at each backward: one forward / backward per step
    total = total_steps(len(train_rows), h)
    eval_steps, patience = h["eval_steps"], h["early_stopping_patience"]
    keep_best = h.get("keep_weights", "best") == "best"
    best_dir = os.path.join(output_dir, "best-adapter")
    log_history, best, since_best, status = [], None, 0, "completed"
    started, tokens_seen = time.time(), 0
    model.train()
    for step, epoch, batches in plan_steps(len(train_rows), h):
        rows = [train_rows[i] for batch in batches for i in batch]
        targets = max(1, sum(target_count(r) for r in rows))
        lr = lr_at(step, h, total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        chunks = shard(rows, procs.rank, procs.world, per_device or max(1, len(rows)))
        local = 0.0
        for c, chunk in enumerate(chunks):
            with procs.no_sync(model) if c < len(chunks) - 1 else contextlib.nullcontext():
                value = nll_sum(model, chunk, pad_id, procs.device)
                procs.backward(value * (procs.world / targets))
            local += float(value.detach())
        loss = procs.reduce_sum(local) / targets
        if not math.isfinite(loss):
            raise SystemExit("the loss became %s at step %d; lower the learning rate (now %g) or check the data" % (loss, step + 1, h["learning_rate"]))
        grad_norm = procs.clip(model, params, h["max_grad_norm"])
        optimizer.step()
        optimizer.zero_grad()
        tokens_seen += sum(len(r["input_ids"]) for r in rows)
        entry = {"epoch": epoch, "grad_norm": grad_norm, "learning_rate": lr, "loss": loss, "num_tokens": tokens_seen, "step": step + 1}
        log_history.append(entry)
        if on_step:
            on_step(entry)
        if procs.is_main:
            print(json.dumps(entry), flush=True)
        stop = False
        if val_rows and ((eval_steps > 0 and (step + 1) % eval_steps == 0) or step + 1 == total):
            val = evaluate(model, procs, val_rows, pad_id, size)
            log_history.append({"epoch": epoch, "eval_loss": val, "eval_perplexity": math.exp(val), "step": step + 1})
            if procs.is_main:
                print(json.dumps(log_history[-1]), flush=True)
            if best is None or val < best["eval_loss"]:
                best, since_best = {"eval_loss": val, "step": step + 1}, 0
                if keep_best:
                    save_adapter(best_dir)
            else:
                since_best += 1
                stop = patience > 0 and since_best >= patience
        if stop:
            status = "early-stopped"
            break
    seconds = time.time() - started
    return status, log_history, best, {"seconds": seconds, "tokens_per_second": tokens_seen / seconds if seconds > 0 else 0.0}


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_result(output, run, status, log_history, best, speed, base, dtype, machine_info, row_count):
    """OUTPUT/trainer_state.json (log_history), run_info.json (outcome, machine) and run.json (the run it trained)."""
    h = run["hyperparameters"]
    steps = max((e["step"] for e in log_history), default=0)
    write_json(os.path.join(output, "trainer_state.json"), {
        "global_step": steps, "max_steps": total_steps(row_count, h), "num_train_epochs": h["num_train_epochs"],
        "train_batch_size": h["per_device_train_batch_size"], "best_metric": best["eval_loss"] if best else None,
        "best_global_step": best["step"] if best else None, "is_world_process_zero": True, "log_history": log_history,
    })
    write_json(os.path.join(output, "run_info.json"), {
        "format": RESULT_FORMAT, "status": status, "steps": steps, "base": base, "dtype": dtype,
        "export": {"format": run["format"], "base_content_hash": run["base_model"]["content_hash"], "datasets": [f["content_hash"] for f in run["dataset"]["files"]]},
        "seconds": speed["seconds"], "tokens_per_second": speed["tokens_per_second"], "machine": machine_info,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    write_json(os.path.join(output, "run.json"), run)


def check_tokens(tokenizer, rows, tokenization):
    """Re-encodes each row's text (its segments joined, encoded once, as Lorasmith encodes it) with the Hugging Face
    tokenizer and compares with the exported ids."""
    bos, eos = tokenization["bos_token_id"], tokenization["eos_token_id"]
    bad = 0
    for row in rows:
        if "segments" not in row:
            continue
        ids = tokenizer("".join(segment["text"] for segment in row["segments"]), add_special_tokens=False)["input_ids"]
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos] + ids
        if row.get("eos") and eos is not None:
            ids.append(eos)
        ids = ids[:tokenization["max_length"]]
        if ids != row["input_ids"]:
            bad += 1
            if bad <= 5:
                print("line %d: the tokenizer gives %s..., the export %s..." % (row["line"], ids[:12], row["input_ids"][:12]), file=sys.stderr)
    return bad


def machine(procs, accelerator):
    """Where the run trained and with what: the versions it actually ran with (the import compares them with
    run.json's tested_versions), the world size, and each process's machine and GPU. Call it on every process:
    the processes' devices are gathered from all of them."""
    import torch

    device = torch.device(procs.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    ranks = procs.gather({"hostname": socket.gethostname(), "device": gpu})
    info = {"hostname": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}
    info["cuda"] = torch.version.cuda
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    for name in ("transformers", "peft", "accelerate", "deepspeed"):
        try:
            info[name] = __import__(name).__version__
        except Exception:
            info[name] = None
    info["hosts"] = sorted(set(r["hostname"] for r in ranks))
    info["devices"] = [r["device"] for r in ranks if r["device"]]
    info["processes"] = procs.world
    kind = accelerator.distributed_type if accelerator is not None else "NO"
    info["distributed_type"] = getattr(kind, "value", str(kind))
    info["mixed_precision"] = accelerator.mixed_precision if accelerator is not None else "no"
    return info


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train this exported Lorasmith run with transformers + PEFT (launch with accelerate).")
    p.add_argument("--base", help="the base model: a hub id or a local folder (default: run.json's reference)")
    p.add_argument("--output", default=os.path.join(HERE, "output"), help="where the adapter and logs go (default: output/ here)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="the base weights' dtype (the engine trains in float32)")
    p.add_argument("--per-device-batch-size", type=int, help="rows per forward pass on each process (the step's rows stay the same)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in the backward pass: less memory")
    p.add_argument("--check-tokens", action="store_true", help="re-encode the data with the base's tokenizer and stop on any difference")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    run = read_json(os.path.join(HERE, "run.json"))
    h = run["hyperparameters"]
    base = args.base or run["base_model"]["hub_id"] or run["base_model"]["path"]
    train_rows = read_jsonl(os.path.join(HERE, "data", "train.jsonl"))
    val_rows = read_jsonl(os.path.join(HERE, "data", "val.jsonl"))

    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedType
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.check_tokens:
        bad = check_tokens(AutoTokenizer.from_pretrained(base), train_rows + val_rows, run["tokenization"])
        if bad:
            raise SystemExit("%d rows encode differently with %s's tokenizer than in this export" % (bad, base))
    accelerator = Accelerator()
    procs = AccelerateProcesses(accelerator)
    torch.manual_seed(h["seed"])
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    model.config.use_cache = False
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = PeftModel.from_pretrained(model, os.path.join(HERE, "initial_adapter"), is_trainable=True)

    def adam(params):
        return torch.optim.AdamW(params, lr=h["learning_rate"], betas=(h["adam_beta1"], h["adam_beta2"]), eps=h["adam_epsilon"], weight_decay=h["weight_decay"])

    if accelerator.distributed_type == DistributedType.FSDP:
        model = accelerator.prepare(model)  # FSDP wraps the model first; the optimizer takes its parameters
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = accelerator.prepare(adam(params))
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        model, optimizer = accelerator.prepare(model, adam(params))
        params = [p for p in model.parameters() if p.requires_grad]

    os.makedirs(args.output, exist_ok=True)

    def save_adapter(folder):
        state = accelerator.get_state_dict(model)  # every process: ZeRO-3 and FSDP gather the weights here
        if accelerator.is_main_process:
            accelerator.unwrap_model(model).save_pretrained(folder, state_dict=state, safe_serialization=True)
        accelerator.wait_for_everyone()

    status, log_history, best, speed = train(model, params, optimizer, procs, run, train_rows, val_rows, save_adapter, args.output, per_device=args.per_device_batch_size or h["per_device_train_batch_size"])
    adapter_dir = os.path.join(args.output, "adapter")
    best_dir = os.path.join(args.output, "best-adapter")
    if best is not None and h.get("keep_weights", "best") == "best":
        if accelerator.is_main_process:
            shutil.rmtree(adapter_dir, ignore_errors=True)
            shutil.copytree(best_dir, adapter_dir)  # the engine keeps the weights of the best validation loss too
    else:
        save_adapter(adapter_dir)
    machine_info = machine(procs, accelerator)  # on every process: each names its GPU
    if accelerator.is_main_process:
        write_result(args.output, run, status, log_history, best, speed, base, args.dtype, machine_info, len(train_rows))
        print("adapter written to %s; import it with: lorasmith import-run %s" % (adapter_dir, args.output), flush=True)
    accelerator.end_training()


if __name__ == "__main__":
    main()
`;
