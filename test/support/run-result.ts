/**
 * An exported run's OUTPUT/ as its train.py leaves it, for import tests where transformers and PEFT cannot run: the
 * adapter given, and trainer_state.json, run_info.json and run.json written by the exported train.py's own
 * write_result (python3, no torch) from the given log history and machine.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** run_info.json's machine as the exported train.py's machine() records it: two GPUs of one box, the tested versions. */
export const REMOTE_MACHINE = {
  hostname: 'gpu-box', platform: 'Linux', python: '3.12.3', torch: '2.11.0+cu128', cuda: '12.8', cudnn: 91002, transformers: '5.17.0', peft: '0.21.0',
  accelerate: '1.15.0', deepspeed: null, hosts: ['gpu-box'], devices: ['NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3'], processes: 2,
  distributed_type: 'MULTI_GPU', mixed_precision: 'no',
};

export interface LoggedStep { readonly step: number; readonly loss: number; readonly lr: number; readonly gradNorm: number }
export interface LoggedEval { readonly step: number; readonly valLoss: number }

export function writeRunResult(
  bundle: string, output: string, adapterDir: string, history: readonly LoggedStep[], evals: readonly LoggedEval[], machine: object = REMOTE_MACHINE,
): void {
  mkdirSync(output, { recursive: true });
  cpSync(adapterDir, join(output, 'adapter'), { recursive: true });
  const log = [
    ...history.map((h) => ({ epoch: h.step / history.length, grad_norm: h.gradNorm, learning_rate: h.lr, loss: h.loss, step: h.step })),
    ...evals.map((e) => ({ epoch: e.step / history.length, eval_loss: e.valLoss, eval_perplexity: Math.exp(e.valLoss), step: e.step })),
  ];
  const best = evals.reduce<LoggedEval | null>((b, e) => (b === null || e.valLoss < b.valLoss ? e : b), null);
  const code = `import sys, json; sys.path.insert(0, ${JSON.stringify(bundle)}); import train
run = train.read_json(${JSON.stringify(join(bundle, 'run.json'))})
a = json.loads(sys.stdin.read())
train.write_result(${JSON.stringify(output)}, run, "completed", a["log"], a["best"], {"seconds": 12.5, "tokens_per_second": 900.0}, "example/base", "float32", a["machine"], run["dataset"]["train_rows"])`;
  const run = spawnSync('python3', ['-c', code], {
    input: JSON.stringify({ log, best: best ? { eval_loss: best.valLoss, step: best.step } : null, machine }), encoding: 'utf8',
  });
  if (run.error) throw new Error(`python3 is needed to run the exported train.py's write_result (apt install python3): ${run.error.message}`);
  if (run.status !== 0) throw new Error(`write_result failed: ${run.stderr}`);
}
