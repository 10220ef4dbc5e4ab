/**
 * `lorasmith export-run <model-dir> --data FILE --out DIR [train's settings]`: the run `lorasmith train` would do
 * with the same options, as a folder for transformers + PEFT + accelerate on other GPUs (engine/handoff/export-run.ts):
 * data with the engine's masks, the base reference and hash, LoraConfig, hyperparameters, train.py, accelerate
 * configs, requirements.txt and a README with the launch commands. Refuses a non-empty --out.
 */
import { resolve } from 'node:path';
import { hashModel } from '../common/hash';
import { exportRun } from '../engine/handoff/export-run';
import { UsageError, type CliCommand, type CliIo } from './command';
import { flagOption, parseOptions, positional, stringOption, type OptionKinds } from './options';
import { parseFormat, settingsFrom, TRAIN_OPTIONS } from './train';

/** train's options, less those about running here or on a remote engine (checkpoints, resume, backend, estimates), plus the hub id. */
const LOCAL_ONLY = ['checkpoint-every', 'checkpoint-dir', 'resume', 'recompute', 'backend', 'dry-run', 'remote', 'token'];
const OPTIONS: OptionKinds = {
  ...Object.fromEntries(Object.entries(TRAIN_OPTIONS).filter(([name]) => !LOCAL_ONLY.includes(name))),
  'hub-id': 'string',
};

export const EXPORT_RUN_USAGE = `lorasmith export-run <model-dir> --data FILE --out DIR [--hub-id REPO] [train's settings: --targets, --rank,
  --alpha, --dropout, --rslora, --parent-adapter, --epochs | --max-steps, --learning-rate, --batch-size, --grad-accum,
  --max-seq-len, --val-split | --val-data, --seed, --scheduler, --warmup-steps, --weight-decay, --max-grad-norm,
  --eval-every, --patience, --keep, --train-on-prompt, --packing, --format] [--json]

  --out      a new (or empty) folder: the export is written whole or not at all
  --hub-id   the base's Hugging Face repo id, which the training machine downloads (default: <model-dir>'s path)
  The settings and their defaults are lorasmith train's; see 'lorasmith train --help'.`;

export const exportRunCommand: CliCommand = {
  name: 'export-run',
  summary: 'export a training run for transformers + PEFT + accelerate on other GPUs',
  usage: EXPORT_RUN_USAGE,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const parsed = parseOptions(argv, OPTIONS);
    const modelArg = positional(parsed, 'export-run', '<model-dir>', EXPORT_RUN_USAGE);
    const data = stringOption(parsed, 'data');
    const out = stringOption(parsed, 'out');
    if (!data) throw new UsageError('--data FILE is required');
    if (!out) throw new UsageError('--out DIR is required');
    const valData = stringOption(parsed, 'val-data');
    const parent = stringOption(parsed, 'parent-adapter');
    const modelDir = resolve(modelArg);
    const result = await exportRun({
      modelDir,
      base: { hubId: stringOption(parsed, 'hub-id') ?? null, contentHash: hashModel(modelDir) },
      data: { path: resolve(data), format: parseFormat(stringOption(parsed, 'format')), ...(valData ? { valPath: resolve(valData) } : {}) },
      settings: settingsFrom(parsed),
      ...(parent ? { parentAdapterDir: resolve(parent) } : {}),
      outDir: resolve(out),
    });
    if (flagOption(parsed, 'json')) {
      io.out(JSON.stringify({ done: true, outDir: result.outDir, trainRows: result.trainRows, valRows: result.valRows, totalSteps: result.totalSteps, files: result.files }));
    } else {
      for (const file of result.datasets) io.out(`${file.path}: ${file.format}, ${file.valid} of ${file.records} records used, ${file.skipped} skipped`);
      io.out(`${result.trainRows} training rows, ${result.valRows} validation rows, ${result.totalSteps} steps`);
      io.out(`run exported to ${result.outDir}; see its README.md (one GPU: accelerate launch --config_file accelerate/single_gpu.yaml train.py)`);
    }
    return 0;
  },
};
