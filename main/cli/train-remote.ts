/**
 * `lorasmith train <model-dir> --data FILE --out DIR --remote 127.0.0.1:PORT [--token T] ...`: the same run on the
 * engine of a `lorasmith serve` on another machine, reached through an SSH tunnel, as the app's Settings → Remote
 * engine does (host/remote): the dataset is normalized here as the library stores it, the model folder and the
 * dataset go by content (once: the remote keeps them by hash), progress streams back, and the adapter comes back
 * into --out with machine.json naming the machine and engine it trained on. Ctrl-C cancels the run on the remote;
 * its last checkpoint is copied here as it is written, so `--resume` continues it (here or there).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TrainingSettings } from '../../preload/contract';
import { assertEmptyOutput, fsyncTree, publishDir, tempSibling } from '../common/atomic';
import { hashModel } from '../common/hash';
import type { DatasetFormat } from '../engine/train/datasets/formats';
import { normalizeDatasetToFile } from '../engine/train/datasets/normalize';
import type { TrainProgress } from '../engine/train/loop';
import { TARGET_GROUPS } from '../engine/lora/config';
import { inspectModel } from '../engine/models/inspect';
import { proposeTraining, withProposal, type Proposal, type ProposedField } from '../engine/train/proposal';
import { resolveTrainSettings, type TrainSettingsInput } from '../engine/train/settings';
import { HostClient } from '../host/client';
import { describeMachine } from '../host/machine';
import type { TrainJob, TrainOutcome } from '../host/protocol';
import { withRemoteEngine } from '../host/remote/remote-host';
import { workerHost } from '../host/worker-host';
import { contractSettings } from '../services/file-work/jobs';
import { recordTrainedOn } from '../services/remote-engine';
import { UsageError, type CliIo } from './command';
import { flagOption, stringOption, type ParsedOptions } from './options';
import { packageVersion } from './version';

/** The environment variable a token may come from instead of --token (a command line is visible to `ps`). */
export const REMOTE_TOKEN_ENV = 'LORASMITH_REMOTE_TOKEN';

/** What `train` runs on this machine only: the remote engine takes the run as the app sends it. */
const LOCAL_ONLY = ['full', 'packing', 'val-data', 'dry-run', 'measure-precision', 'backend'] as const;

export interface RemoteTrainInput {
  readonly parsed: ParsedOptions;
  readonly modelDir: string;
  readonly data: string;
  readonly outDir: string;
  readonly settings: TrainSettingsInput;
  readonly format: DatasetFormat | undefined;
  readonly describeProgress: (p: TrainProgress) => string;
  /** The settings a proposal filled in, in words ('learning rate 0.0002, 120 steps'). */
  readonly proposalNote: (filled: readonly ProposedField[], proposal: Proposal) => string;
}

/**
 * The run's settings as a remote engine takes them (the app's): what a LoRA run leaves out taken from the wizard's
 * proposal for this model and dataset, as a local run takes it (the size from the folder, no weight read), and
 * 'auto' validation resolved as the engine resolves it.
 */
function remoteSettings(given: TrainSettingsInput, modelDir: string, validRecords: number): { settings: TrainingSettings; proposal: Proposal; filled: ProposedField[] } {
  const proposal = proposeTraining({ parameterCount: inspectModel(modelDir).parameterCount, records: validRecords });
  const { settings: input, filled } = withProposal(given, proposal);
  const settings = resolveTrainSettings(input);
  if (typeof settings.lora?.targetModules === 'string' && !(TARGET_GROUPS as readonly string[]).includes(settings.lora.targetModules)) {
    throw new UsageError('--targets re:PATTERN runs on this machine only; a remote engine takes module names or a group (attention, mlp, all-linear)');
  }
  const valSplit = settings.valSplit === 'auto' ? (validRecords >= 10 ? 0.1 : 0) : settings.valSplit;
  return { settings: { ...contractSettings({ ...settings, valSplit }), basePrecision: settings.basePrecision }, proposal, filled };
}

export async function trainOnRemoteEngine(run: RemoteTrainInput, io: CliIo): Promise<number> {
  const { parsed, modelDir, outDir } = run;
  for (const name of LOCAL_ONLY) {
    if (parsed.values[name] !== undefined) throw new UsageError(`--${name} runs on this machine only; leave it out with --remote`);
  }
  const address = stringOption(parsed, 'remote') as string;
  const token = stringOption(parsed, 'token') ?? process.env[REMOTE_TOKEN_ENV] ?? '';
  const json = flagOption(parsed, 'json');
  const print = (value: Record<string, unknown>, text: string) => io.out(json ? JSON.stringify(value) : text);
  assertEmptyOutput(outDir); // before anything is sent: a user's files are never written over

  const scratch = mkdtempSync(join(tmpdir(), 'lorasmith-remote-train-'));
  const host = new HostClient(withRemoteEngine(workerHost(), packageVersion()));
  // The adapter comes back into a temp folder beside --out, moved into place whole with its machine.json.
  const staging = tempSibling(outDir);
  try {
    const normalized = join(scratch, 'normalized.jsonl');
    const report = normalizeDatasetToFile(resolve(run.data), normalized, run.format ? { format: run.format } : {});
    print({ event: 'dataset', ...report, issues: report.issues.slice(0, 50) }, `${report.path}: ${report.format} (${report.fileType}), ${report.valid} of ${report.records} records used, ${report.skipped} skipped`);
    const { settings, proposal, filled } = remoteSettings(run.settings, modelDir, report.valid);
    if (filled.length > 0) print({ event: 'advice', proposal, filled }, `not given, so from the proposal: ${run.proposalNote(filled, proposal)}`);

    await host.setRemote({ address, token });
    const machine = await host.call({ type: 'machine' }); // the address, token and version checked before anything is sent
    const where = `${describeMachine(machine)} through the remote engine at ${machine.remote?.address ?? address}, Lorasmith ${machine.remote?.version ?? '?'}`;
    print({ event: 'remote', machine: where }, `training on ${where}`);

    const parent = stringOption(parsed, 'parent-adapter');
    const resumeFrom = stringOption(parsed, 'resume');
    const job: TrainJob = {
      modelDir, baseModelHash: hashModel(modelDir),
      dataset: { normalized, original: resolve(run.data), format: report.format },
      settings,
      ...(parent ? { parentAdapterDir: resolve(parent) } : {}),
      outputDir: staging,
      checkpointDir: resolve(stringOption(parsed, 'checkpoint-dir') ?? `${outDir}.checkpoints`),
      ...(resumeFrom ? { resumeFrom: resolve(resumeFrom) } : {}),
    };
    let checkpoint: string | null = null;
    const handle = host.request({ type: 'train', job }, (event) => {
      if (event.kind !== 'progress') return;
      if (event.progress.checkpoint) checkpoint = event.progress.checkpoint;
      const progress: TrainProgress = { ...event.progress, valPerplexity: event.progress.valLoss === null ? null : Math.exp(event.progress.valLoss) };
      print({ event: 'progress', ...progress }, run.describeProgress(progress));
    });
    const onAbort = () => void host.cancel(handle.seq).catch(() => undefined);
    io.signal.addEventListener('abort', onAbort, { once: true });
    let outcome: TrainOutcome;
    try {
      outcome = await handle.result;
    } finally {
      io.signal.removeEventListener('abort', onAbort);
    }
    if (outcome.status === 'cancelled' || outcome.adapterDir === null) {
      print({ done: false, cancelled: true, steps: outcome.steps, checkpoint }, `cancelled at step ${outcome.steps}; ${checkpoint ? `resume with --resume ${checkpoint}` : 'no checkpoint was written'}`);
      return 130;
    }
    if (outcome.trainedOn) recordTrainedOn(outcome.adapterDir, outcome.trainedOn);
    fsyncTree(staging);
    publishDir(staging, outDir);
    const trainedOn = outcome.trainedOn?.description ?? where;
    print(
      { done: true, status: outcome.status, steps: outcome.steps, trainLoss: outcome.trainLoss, valLoss: outcome.valLoss, seconds: outcome.seconds, adapterDir: outDir, trainedOn },
      `done (${outcome.status}): ${outcome.steps} steps, train loss ${outcome.trainLoss?.toFixed(4)}, val loss ${outcome.valLoss?.toFixed(4) ?? 'n/a'}\ntrained on ${trainedOn}\nadapter written to ${outDir}`,
    );
    return 0;
  } finally {
    await host.shutdown();
    rmSync(staging, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
}
