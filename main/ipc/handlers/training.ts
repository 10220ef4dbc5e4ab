/**
 * Training runs: create the run row (or resume a stopped one from its checkpoint), hand the job to the engine
 * host, record progress as metrics and checkpoints, commit the finished adapter as a new version, and mark the run
 * failed with the reason when the engine reports an error, or interrupted (resumable) when the engine dies.
 */
import { basename } from 'node:path';
import type { TrainingRun, TrainingSettings } from '../../../preload/contract';
import type { HostEvent, TrainJob, TrainProgress } from '../../host/protocol';
import type { Library } from '../../store/index';
import type { RunDetails } from '../../store/repos/runs';
import { recordTrainedOn } from '../../services/remote-engine';
import type { HandlerContext } from '../context';
import { IpcError, toAppError } from '../errors';
import type { Handlers } from '../types';

interface JobInput {
  readonly modelId: string;
  readonly datasetId: string;
  readonly settings: TrainingSettings;
  readonly parentVersionId?: string | undefined;
}

export function buildJob(ctx: HandlerContext, input: JobInput, outputDir: string, checkpointDir: string): TrainJob {
  const { library } = ctx;
  const { format } = library.datasets.get(input.datasetId);
  return {
    modelDir: library.models.resolvePath(input.modelId),
    baseModelHash: library.models.get(input.modelId).contentHash,
    dataset: { ...library.datasets.resolveFiles(input.datasetId), format },
    settings: input.settings,
    ...(input.parentVersionId ? { parentAdapterDir: library.versions.resolvePath(input.parentVersionId) } : {}),
    outputDir,
    checkpointDir,
  };
}

/** A stored run as the contract shows it: with its adapter's name, read from the library. */
export function runView(library: Library, run: RunDetails, adapterNames?: ReadonlyMap<string, string>): TrainingRun {
  return {
    ...run,
    adapterName: adapterNames?.get(run.adapterId) ?? library.adapters.get(run.adapterId).name,
    checkpointStep: run.lastCheckpoint === null ? null : checkpointStepOf(run.lastCheckpoint),
  };
}

/** The step in a checkpoint folder's name (the engine writes checkpoint-<step>). */
function checkpointStepOf(path: string): number | null {
  const match = /checkpoint-(\d+)$/.exec(basename(path));
  return match ? Number(match[1]) : null;
}

export interface TrainingHandlers extends Pick<Handlers,
  'train.estimate' | 'train.start' | 'train.resume' | 'train.cancel' | 'runs.list' | 'runs.metrics' | 'runs.delete'> {
  /** Cancels every running training (between steps) and waits until each run is recorded: for app shutdown. */
  cancelAll(): Promise<void>;
}

export function trainingHandlers(ctx: HandlerContext): TrainingHandlers {
  const { library, host } = ctx;
  const active = new Map<string, { seq: number; done: Promise<void> }>();

  /** A run whose progress could not be recorded (a full disk, a library locked by someone else): why. */
  const unrecorded = new Map<string, string>();

  function record(runId: string, p: TrainProgress): void {
    if (p.kind === 'checkpoint' && p.checkpoint) library.runs.recordCheckpoint(runId, p.checkpoint, p.step);
    if (p.kind === 'step' || p.kind === 'eval') {
      library.metrics.append(runId, [{
        step: p.step, lr: p.lr, gradNorm: p.gradNorm, epoch: p.epoch, tokensPerSecond: p.tokensPerSecond,
        ...(p.kind === 'step' ? { loss: p.loss } : {}), ...(p.valLoss !== null ? { valLoss: p.valLoss } : {}),
      }]);
    }
  }

  function onEvent(runId: string, event: HostEvent): void {
    if (event.kind !== 'progress') return;
    const p = event.progress;
    try {
      record(runId, p);
    } catch (error) {
      // Training on without a record of it would lose the run: stop it, and say why when it has stopped.
      if (!unrecorded.has(runId)) {
        const e = toAppError(error);
        unrecorded.set(runId, `[${e.code}] the library could not record step ${p.step}: ${e.message}`);
        const seq = active.get(runId)?.seq;
        if (seq !== undefined) void host.cancel(seq).catch(() => undefined);
      }
      return;
    }
    ctx.emit('train.progress', {
      runId, step: p.step, totalSteps: p.totalSteps, epoch: p.epoch, loss: p.loss, lr: p.lr, gradNorm: p.gradNorm,
      tokensPerSecond: p.tokensPerSecond, etaSeconds: p.etaSeconds, memoryBytes: p.memoryBytes,
      ...(p.valLoss !== null ? { valLoss: p.valLoss } : {}),
      ...(p.sample !== undefined ? { sample: p.sample } : {}),
    });
  }

  function finish(runId: string, outcome: 'done' | 'failed' | 'cancelled' | 'interrupted', error?: string): void {
    active.delete(runId); // before the event: whoever hears it may start, resume or delete at once
    const failure = unrecorded.get(runId);
    unrecorded.delete(runId);
    const run = failure ? library.runs.finish(runId, 'failed', failure) : library.runs.finish(runId, outcome, error);
    ctx.emit('train.finished', { run: runView(library, run) });
  }

  function refuseWhileTraining(): void {
    if (active.size > 0) {
      throw new IpcError('BUSY', `training run ${[...active.keys()].join(', ')} is in progress; wait for it to finish or cancel it first`);
    }
  }

  /** Hands a running run to the host (from its checkpoint when resuming) and records what comes back. */
  function launch(run: RunDetails, resumeFrom: string | null): TrainingRun {
    const input = { modelId: run.baseModelId, datasetId: run.datasetId, settings: run.settings, parentVersionId: run.parentVersionId ?? undefined };
    const job: TrainJob = {
      ...buildJob(ctx, input, library.runs.outputDir(run.id), library.runs.checkpointsDir(run.id)),
      ...(resumeFrom ? { resumeFrom } : {}),
    };
    const handle = host.request({ type: 'train', job }, (event) => onEvent(run.id, event));
    const done = handle.result.then(
      (outcome) => {
        if (unrecorded.has(run.id)) return finish(run.id, 'failed'); // finish says why; an unrecorded run commits nothing
        if (outcome.status === 'cancelled' || !outcome.adapterDir) return finish(run.id, 'cancelled');
        // A remote engine's run: the machine and engine it trained on stay with the version (its lineage).
        if (outcome.trainedOn) recordTrainedOn(outcome.adapterDir, outcome.trainedOn);
        library.versions.commit({
          adapterId: run.adapterId, filesFrom: outcome.adapterDir, take: 'move', origin: 'trained',
          parentVersionId: run.parentVersionId, datasetId: run.datasetId, settings: run.settings, runId: run.id,
          metrics: {
            steps: outcome.steps,
            ...(outcome.trainLoss !== null ? { trainLoss: outcome.trainLoss } : {}),
            ...(outcome.valLoss !== null ? { valLoss: outcome.valLoss } : {}),
          },
        });
        finish(run.id, 'done');
      },
      (error: unknown) => {
        const e = toAppError(error);
        // An engine that went away mid-run (this machine's host died, out of memory say, or a remote engine was
        // lost): the run is interrupted, not failed, and resumes from its last checkpoint like any other.
        const engineLost = e.code === 'HOST_DIED' || e.code === 'REMOTE_ENGINE_LOST';
        const outcome = e.code === 'CANCELLED' ? 'cancelled' : engineLost ? 'interrupted' : 'failed';
        finish(run.id, outcome, `[${e.code}] ${e.message}`);
      },
    ).catch((error: unknown) => {
      // Recording the outcome failed (a version commit, say): mark the run failed with that reason instead.
      try {
        finish(run.id, 'failed', `[${toAppError(error).code}] ${toAppError(error).message}`);
      } catch {
        // The library itself is unusable; the next start-up check marks the run interrupted.
      }
    }).finally(() => active.delete(run.id));
    active.set(run.id, { seq: handle.seq, done });
    return runView(library, library.runs.get(run.id));
  }

  return {
    'train.estimate': async (args) => {
      const dir = library.dataDir.resolve('runs/.estimate');
      return host.call({ type: 'estimate', job: buildJob(ctx, args, dir, dir) });
    },
    'train.start': async (args) => {
      refuseWhileTraining();
      const existing = library.adapters.findByName(args.adapterName);
      if (existing && existing.baseModelId !== args.modelId) {
        throw new IpcError('INVALID_INPUT', `adapter '${args.adapterName}' belongs to another base model; choose another name`);
      }
      // Everything the run would refuse (a missing model, dataset or parent, targets this base lacks, an unreadable
      // dataset) is refused now, before a row exists: a refused start leaves no adapter and no run behind.
      const check = library.dataDir.resolve('runs/.check');
      await host.call({ type: 'checkJob', job: buildJob(ctx, args, check, check) });
      if (active.size > 0) throw new IpcError('BUSY', `training run ${[...active.keys()].join(', ')} started meanwhile; wait for it to finish or cancel it first`);
      const adapter = existing ?? library.adapters.create({ name: args.adapterName, baseModelId: args.modelId });
      const run = library.runs.create({ adapterId: adapter.id, datasetId: args.datasetId, settings: args.settings, parentVersionId: args.parentVersionId ?? null });
      library.runs.start(run.id);
      return launch(library.runs.get(run.id), null);
    },
    'train.resume': async ({ runId }) => {
      refuseWhileTraining();
      const stored = library.runs.get(runId);
      const checkpoint = library.runs.resolveCheckpoint(runId);
      const fromStep = checkpoint === null ? 0 : checkpointStepOf(checkpoint) ?? 0;
      library.runs.resume(runId, fromStep);
      return launch(stored, fromStep > 0 ? checkpoint : null);
    },
    'train.cancel': async ({ runId }) => {
      const entry = active.get(runId);
      if (!entry) return { cancelled: false };
      void host.cancel(entry.seq);
      return { cancelled: true };
    },
    'runs.list': async () => {
      const names = new Map(library.adapters.list().map((a) => [a.id, a.name]));
      return library.runs.list().map((run) => runView(library, run, names));
    },
    'runs.metrics': async ({ runId }) => library.metrics.list(runId, { maxPoints: 2000 }),
    'runs.delete': async ({ runId }) => {
      if (active.has(runId)) throw new IpcError('IN_USE', `run ${runId} is training; cancel it first`);
      library.runs.delete(runId);
      return { deleted: true };
    },
    async cancelAll() {
      const runs = [...active.values()];
      await Promise.all(runs.map((r) => host.cancel(r.seq)));
      await Promise.all(runs.map((r) => r.done.catch(() => undefined)));
    },
  };
}
