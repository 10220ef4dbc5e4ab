/** README.md of an exported run: what it is, how to launch it on one GPU or many, and what comes back. */

interface RunSummary {
  readonly base_model: { readonly hub_id: string | null; readonly path: string; readonly content_hash: string; readonly model_type: string; readonly parameters: number };
  readonly dataset: { readonly files: readonly { readonly path: string; readonly content_hash: string; readonly valid: number }[]; readonly train_rows: number; readonly val_rows: number };
  readonly lora: Readonly<Record<string, unknown>>;
  readonly hyperparameters: Readonly<Record<string, unknown>>;
}

const table = (values: Readonly<Record<string, unknown>>): string =>
  ['| setting | value |', '|---|---|', ...Object.entries(values).map(([k, v]) => `| ${k} | ${JSON.stringify(v)} |`)].join('\n');

export function bundleReadme(run: RunSummary, files: readonly string[]): string {
  const base = run.base_model;
  const ref = base.hub_id ?? base.path;
  return `# A Lorasmith run for transformers + PEFT + accelerate

This folder is the LoRA run Lorasmith would have done, ready to train on other GPUs: one, several (DDP), DeepSpeed
ZeRO-2/3 or FSDP, on one machine or several. \`train.py\` trains it and writes a PEFT adapter with its log history;
\`lorasmith import-run\` (or the app's Adapters view, "Import a run") takes the result back into the library.

- Base model: \`${ref}\` (${base.model_type}, ${base.parameters.toLocaleString('en-US')} parameters), content hash \`${base.content_hash}\`${base.hub_id ? `; exported from \`${base.path}\`` : ''}
- Data: ${run.dataset.files.map((f) => `\`${f.path}\` (${f.valid} records, \`${f.content_hash}\`)`).join(', ')}; ${run.dataset.train_rows} training rows, ${run.dataset.val_rows} validation rows

## LoRA (PEFT's LoraConfig, \`lora_config.json\`)

${table(run.lora)}

## Hyperparameters (\`run.json\`)

${table(run.hyperparameters)}

## Set up (on the training machine)

\`\`\`sh
python3 -m venv .venv && . .venv/bin/activate
pip install -r requirements.txt          # and deepspeed for the DeepSpeed configs
\`\`\`
The base model is read from the Hugging Face hub by its id, or give a local copy with \`--base /path/to/model\`.

## Launch (from this folder)

\`\`\`sh
# one GPU
accelerate launch --config_file accelerate/single_gpu.yaml train.py
# N GPUs on this machine (DDP)
accelerate launch --config_file accelerate/ddp.yaml --num_processes N train.py
# DeepSpeed ZeRO-2 / ZeRO-3 (pip install deepspeed)
accelerate launch --config_file accelerate/deepspeed_zero2.yaml --num_processes N train.py
accelerate launch --config_file accelerate/deepspeed_zero3.yaml --num_processes N train.py
# FSDP
accelerate launch --config_file accelerate/fsdp.yaml --num_processes N train.py
# several machines: on each, add --num_machines M --machine_rank R --main_process_ip HOST --main_process_port 29500
\`\`\`
Options of \`train.py\`: \`--base\` (hub id or folder), \`--output DIR\` (default \`output/\`), \`--dtype bfloat16\` (base
weights in bf16: less memory, no longer float32-exact), \`--per-device-batch-size B\` (rows per forward pass; the
step's rows stay the same), \`--gradient-checkpointing\`, \`--check-tokens\` (re-encode the data with the base's
tokenizer and stop on any difference from this export).

## What comes back

\`output/adapter/\` (adapter_config.json, adapter_model.safetensors), \`output/trainer_state.json\` (\`log_history\`:
loss, learning rate, gradient norm per step; eval_loss at each evaluation) and \`output/run_info.json\` (the outcome,
the machines, each process's GPU, the world size, and the torch, CUDA, transformers, PEFT and accelerate versions it
ran with). \`requirements.txt\` pins the versions this export is tested with (\`run.json\`'s \`tested_versions\`);
the import records the versions the run used in the version's lineage and warns where they differ. Bring
\`output/\` back and run:

\`\`\`sh
lorasmith import-run output --data-dir <your library>
\`\`\`

## The same run as Lorasmith's

\`data/train.jsonl\` and \`data/val.jsonl\` hold the token ids and labels Lorasmith computed (the chat template applied,
prompt and template tokens labelled -100, BOS as the tokenizer's config says, EOS after completions, cut at
max_length; \`segments\` shows each row's text with its mask). \`train.py\` takes the rows in Lorasmith's seeded
order, composes each step of the same batches, averages the loss over the step's target tokens, clips, and applies
AdamW with the same schedule; \`initial_adapter/\` holds the same starting weights. On N processes each step's rows
are shared out and the gradient is the same as on one. Two things differ by nature: LoRA dropout draws its own
random masks (the runs agree step for step with lora_dropout 0), and GPU kernels round differently from the CPU's.

## Files

${files.map((f) => `- \`${f}\``).join('\n')}
`;
}
