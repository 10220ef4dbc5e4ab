#!/usr/bin/env python3
"""The GPU check's hand-off step: an exported run's train.py on transformers + PEFT under accelerate, against the
engine, on the tiny llama (test/fixtures/tiny-random-llama) in float32. run.sh runs it as the step 'handoff'.

  1. data.jsonl: twelve question / answer records
  2. lorasmith export-run (the pack's own Node and CLI) writes the run as bundle/
  3. lorasmith train, the same settings on the engine's cpu backend, writes engine/ (adapter, training_record.json)
  4. accelerate launch --config_file bundle/accelerate/single_gpu.yaml bundle/train.py --base MODEL --output peft/
  5. compares train.py's log history with the engine's record: each step's loss (within LOSS_TOL), gradient norm
     (GRAD_REL_TOL relative) and learning rate, each validation loss (LOSS_TOL); the data re-encoded by transformers'
     tokenizer against the export's ids; and the logits at the last position of two rows: the engine's own with its
     adapter against transformers + PEFT's with that adapter (FORWARD_TOL), and transformers + PEFT's with train.py's
     adapter against those with the engine's (TRAINED_TOL of the logits' scale).

Prints one JSON object as its last line. Exit status 0 when every comparison holds, 1 when one does not, 3 when
transformers, PEFT or accelerate is not installed (steps 1 to 3 ran; the JSON says what is missing), 2 on bad use.

  python3 handoff_check.py --node NODE --cli LORASMITH_MJS --check GPU_CHECK_MJS --model DIR --work DIR [--until engine]
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys

LOSS_TOL = 1e-4
GRAD_REL_TOL = 1e-3
FORWARD_TOL = 1e-4
TRAINED_TOL = 1e-3
ROWS = [[0, 1824, 338, 29871, 29941], [0, 1724, 29871, 29945, 2298]]

# The run both sides train: every linear layer, rank 4 with rsLoRA, no dropout (train.py draws its own masks), clipping
# at 0.1 so it acts, warm-up then cosine, an evaluation every 2 of the 6 steps.
SETTINGS = [
    "--targets", "all-linear", "--rank", "4", "--dropout", "0", "--rslora", "--max-steps", "6", "--batch-size", "2",
    "--grad-accum", "2", "--learning-rate", "0.02", "--warmup-steps", "1", "--scheduler", "cosine", "--eval-every", "2",
    "--seed", "7", "--weight-decay", "0.01", "--max-grad-norm", "0.1", "--val-split", "0.25",
]


def run(command, what, env=None):
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (what, done.returncode, (done.stderr or done.stdout).strip()[-2000:]))
    return done.stdout


def last_json(text):
    return json.loads([line for line in text.splitlines() if line.strip()][-1])


def write_data(path):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(12):
            f.write(json.dumps({"prompt": "Q%d: what is %d plus %d?" % (i, i, i + 1), "completion": " %d." % (2 * i + 1)}) + "\n")


def compare_history(engine_record, log_history):
    """Step by step: the engine's history and evaluations against the trainer's log history."""
    steps = [e for e in log_history if "loss" in e]
    evals = [e for e in log_history if "eval_loss" in e]
    history, engine_evals = engine_record["history"], engine_record["evals"]
    problems = []
    if len(steps) != len(history):
        problems.append("train.py logged %d steps, the engine %d" % (len(steps), len(history)))
    worst = {"loss": 0.0, "grad_norm_rel": 0.0, "lr": 0.0, "eval_loss": 0.0}
    for ours, theirs in zip(history, steps):
        if ours["step"] != theirs["step"]:
            problems.append("step %s against %s" % (theirs["step"], ours["step"]))
        worst["loss"] = max(worst["loss"], abs(theirs["loss"] - ours["loss"]))
        worst["grad_norm_rel"] = max(worst["grad_norm_rel"], abs(theirs["grad_norm"] - ours["gradNorm"]) / max(ours["gradNorm"], 1e-12))
        worst["lr"] = max(worst["lr"], abs(theirs["learning_rate"] - ours["lr"]))
    if [e["step"] for e in evals] != [e["step"] for e in engine_evals]:
        problems.append("evaluations at steps %s, the engine's at %s" % ([e["step"] for e in evals], [e["step"] for e in engine_evals]))
    for ours, theirs in zip(engine_evals, evals):
        worst["eval_loss"] = max(worst["eval_loss"], abs(theirs["eval_loss"] - ours["valLoss"]))
    if worst["loss"] > LOSS_TOL:
        problems.append("a step's loss differs by %.3g (tolerance %g)" % (worst["loss"], LOSS_TOL))
    if worst["grad_norm_rel"] > GRAD_REL_TOL:
        problems.append("a step's gradient norm differs by %.3g relative (tolerance %g)" % (worst["grad_norm_rel"], GRAD_REL_TOL))
    if worst["lr"] > 1e-12:
        problems.append("a step's learning rate differs by %.3g" % worst["lr"])
    if worst["eval_loss"] > LOSS_TOL:
        problems.append("a validation loss differs by %.3g (tolerance %g)" % (worst["eval_loss"], LOSS_TOL))
    moved = abs(history[-1]["loss"] - history[0]["loss"]) if history else 0.0
    if moved <= 1e-3:
        problems.append("the engine's loss moved by %.3g only: agreement would say nothing" % moved)
    return {
        "steps": len(steps), "losses": [e["loss"] for e in steps], "engine_losses": [e["loss"] for e in history],
        "eval_losses": [e["eval_loss"] for e in evals], "engine_eval_losses": [e["valLoss"] for e in engine_evals],
        "worst": worst, "problems": problems,
    }


def max_abs(a, b):
    return max(abs(x - y) for row_a, row_b in zip(a, b) for x, y in zip(row_a, row_b))


def peft_logits(model_dir, adapters):
    """transformers + PEFT's float32 logits at each row's last position: the base's, then with each adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    ids = torch.tensor(ROWS, dtype=torch.long, device=device)

    def base():
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()

    out = {}
    with torch.no_grad():
        out["base"] = base()(input_ids=ids).logits[:, -1, :].float().cpu().tolist()
        for name, path in adapters.items():  # each on a base of its own
            model = PeftModel.from_pretrained(base(), path).eval()
            out[name] = model(input_ids=ids).logits[:, -1, :].float().cpu().tolist()
    return out, device


def check_tokens(bundle, model_dir):
    """Rows whose text segments transformers' tokenizer encodes otherwise than the export (train.py's own check)."""
    from transformers import AutoTokenizer

    spec = importlib.util.spec_from_file_location("exported_train", os.path.join(bundle, "train.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with open(os.path.join(bundle, "run.json"), encoding="utf-8") as f:
        tokenization = json.load(f)["tokenization"]
    rows = script.read_jsonl(os.path.join(bundle, "data", "train.jsonl")) + script.read_jsonl(os.path.join(bundle, "data", "val.jsonl"))
    return script.check_tokens(AutoTokenizer.from_pretrained(model_dir), rows, tokenization), len(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--node", required=True)
    p.add_argument("--cli", required=True, help="the pack's bundled lorasmith CLI")
    p.add_argument("--check", required=True, help="the pack's bundled GPU check (its logits command)")
    p.add_argument("--model", required=True, help="the tiny llama's folder")
    p.add_argument("--work", required=True, help="a folder to write into (emptied first)")
    p.add_argument("--until", choices=["engine"], help="stop after the engine's run (where transformers is not installed)")
    args = p.parse_args(argv)

    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data, bundle, engine, peft_out = (os.path.join(work, n) for n in ("data.jsonl", "bundle", "engine", "peft"))
    write_data(data)
    lorasmith = [args.node, args.cli]
    result = {"model": os.path.basename(os.path.normpath(args.model)), "settings": " ".join(SETTINGS)}

    exported = last_json(run(lorasmith + ["export-run", args.model, "--data", data, "--out", bundle, "--json"] + SETTINGS, "lorasmith export-run"))
    result["export"] = {"train_rows": exported["trainRows"], "val_rows": exported["valRows"], "total_steps": exported["totalSteps"]}
    run(lorasmith + ["train", args.model, "--data", data, "--out", engine, "--backend", "cpu", "--checkpoint-every", "0", "--json"] + SETTINGS, "lorasmith train")
    with open(os.path.join(engine, "training_record.json"), encoding="utf-8") as f:
        record = json.load(f)
    result["engine"] = {"backend": record["performance"]["backend"], "losses": [h["loss"] for h in record["history"]], "eval_losses": [e["valLoss"] for e in record["evals"]]}
    if args.until == "engine":
        result["status"] = "stopped after the engine's run, as asked"
        print(json.dumps(result))
        return 0

    missing = [name for name in ("torch", "transformers", "peft", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        result["status"] = "not run: %s not installed (pip install -r %s)" % (", ".join(missing), os.path.join(bundle, "requirements.txt"))
        result["missing"] = missing
        print(json.dumps(result))
        return 3

    problems = []
    bad, rows = check_tokens(bundle, args.model)
    result["tokens"] = {"rows": rows, "encoded_otherwise": bad}
    if bad:
        problems.append("%d of %d rows encode otherwise with transformers' tokenizer than in the export" % (bad, rows))

    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", os.path.join(bundle, "accelerate", "single_gpu.yaml"),
              os.path.join(bundle, "train.py"), "--base", args.model, "--output", peft_out]
    run(launch, "accelerate launch train.py")
    with open(os.path.join(peft_out, "trainer_state.json"), encoding="utf-8") as f:
        history = compare_history(record, json.load(f)["log_history"])
    with open(os.path.join(peft_out, "run_info.json"), encoding="utf-8") as f:
        info = json.load(f)
    result["history"] = history
    result["machine"] = info["machine"]
    problems += history["problems"]

    ours = last_json(run([args.node, args.check, "logits", "--backend", "cpu", "--model", args.model, "--adapter", engine,
                          "--ids", ";".join(",".join(str(i) for i in row) for row in ROWS)], "the engine's logits"))["lastPositionLogits"]
    theirs, device = peft_logits(args.model, {"engine": engine, "trained": os.path.join(peft_out, "adapter")})
    scale = max(1.0, max(abs(x) for row in theirs["engine"] for x in row))
    logits = {
        "device": device,
        "engine_vs_peft_same_adapter": max_abs(ours, theirs["engine"]),
        "peft_trained_vs_engine_trained": max_abs(theirs["trained"], theirs["engine"]),
        "adapter_effect": max_abs(theirs["engine"], theirs["base"]),
        "scale": scale,
    }
    result["logits"] = logits
    if logits["engine_vs_peft_same_adapter"] > FORWARD_TOL:
        problems.append("the engine's logits with its adapter differ from transformers + PEFT's by %.3g (tolerance %g)" % (logits["engine_vs_peft_same_adapter"], FORWARD_TOL))
    if logits["peft_trained_vs_engine_trained"] > TRAINED_TOL * scale:
        problems.append("the adapters trained by train.py and by the engine give logits %.3g apart (tolerance %g)" % (logits["peft_trained_vs_engine_trained"], TRAINED_TOL * scale))
    if logits["adapter_effect"] <= 10 * FORWARD_TOL:
        problems.append("the adapter moves the logits by %.3g only: agreement would say nothing" % logits["adapter_effect"])
    result["problems"] = problems
    result["status"] = "agree" if not problems else "differ"
    result["tolerances"] = {"loss": LOSS_TOL, "grad_norm_relative": GRAD_REL_TOL, "forward": FORWARD_TOL, "trained_logits": TRAINED_TOL}
    result["result_dir"] = peft_out
    print(json.dumps(result))
    return 0 if not problems else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as error:
        print("handoff_check: %s" % error, file=sys.stderr)
        sys.exit(1)
