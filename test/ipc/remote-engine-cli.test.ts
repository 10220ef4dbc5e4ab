/**
 * `lorasmith train --remote` against a real `lorasmith serve` (a process of its own on a free loopback port, its own
 * temp library with the starter model and samples): what an SSH tunnel's local end looks like. The command here
 * sends the dataset by content (the remote's library holds the starter model already), streams the progress, and
 * brings the adapter back into --out with machine.json naming the machine and engine it trained on, with the bytes
 * the same run writes when started in the remote's own library. Ctrl-C cancels it there, with its checkpoint copied
 * here, and --resume finishes it. A wrong token, a non-empty --out and options that run here only write nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { WebSocket } from 'ws';
import type { AdapterVersion, Dataset, TrainingRun, TrainingSettings } from '../../preload/contract';
import type { CliIo } from '../../main/cli/command';
import { UsageError } from '../../main/cli/command';
import { trainCommand } from '../../main/cli/train';
import { REPO, call, nextEvent, openSocket, startServer, tempDir, type RunningServer } from '../support/probes/server';

const STARTER = join(REPO, 'resources', 'starter');
const DATA = join(REPO, 'resources', 'samples', 'verily-chat.jsonl');
/** The run, as train's options and as the app's settings. */
const OPTIONS = ['--targets', 'q_proj,v_proj', '--rank', '4', '--alpha', '8', '--dropout', '0', '--max-steps', '4', '--learning-rate', '5e-3',
  '--batch-size', '2', '--grad-accum', '1', '--max-seq-len', '64', '--val-split', '0', '--seed', '11', '--scheduler', 'linear', '--warmup-steps', '1',
  '--weight-decay', '0', '--max-grad-norm', '1', '--eval-every', '0', '--checkpoint-every', '2'];
const SETTINGS: TrainingSettings = {
  lora: { targetModules: ['q_proj', 'v_proj'], rank: 4, alpha: 8, dropout: 0, useRslora: false },
  maxSteps: 4, learningRate: 5e-3, batchSize: 2, gradAccum: 1, maxSeqLen: 64, valSplit: 0, seed: 11,
  scheduler: 'linear', warmupSteps: 1, weightDecay: 0, maxGradNorm: 1, evalEvery: 0, checkpointEvery: 2, trainOnPrompt: false,
};

let temp: ReturnType<typeof tempDir>;
let remote: RunningServer;
let ws: WebSocket;

interface Ran {
  readonly code: number;
  /** Every --json line, parsed. */
  readonly lines: Record<string, unknown>[];
}

async function train(args: readonly string[], signal = new AbortController().signal, onLine?: (line: Record<string, unknown>) => void): Promise<Ran> {
  const lines: Record<string, unknown>[] = [];
  const io: CliIo = {
    out: (text) => {
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      onLine?.(line);
    },
    err: () => undefined,
    signal,
  };
  const code = await trainCommand.run([STARTER, '--data', DATA, ...args, '--json'], io);
  return { code, lines };
}

const remoteArgs = () => ['--remote', `127.0.0.1:${remote.port}`, '--token', remote.token];
const leftovers = () => readdirSync(temp.dir).filter((name) => name.startsWith('.'));

beforeAll(async () => {
  temp = tempDir('remote-engine-cli');
  remote = await startServer(join(temp.dir, 'remote'), { resourcesDir: join(REPO, 'resources') });
  ws = await openSocket(remote);
}, 240_000);

afterAll(async () => {
  ws?.close();
  await remote?.stop();
  temp?.remove();
});

describe('lorasmith train --remote', () => {
  it('trains on the remote engine and brings the adapter back with the machine it trained on and the bytes of the same run there', async () => {
    const out = join(temp.dir, 'adapter');
    const { code, lines } = await train(['--out', out, ...OPTIONS, ...remoteArgs()]);
    expect(code).toBe(0);
    const where = new RegExp(`^${hostname()} \\(.*\\) through the remote engine at 127\\.0\\.0\\.1:${remote.port}, Lorasmith \\d+\\.\\d+\\.\\d+`);
    expect(lines.find((l) => l.event === 'remote')?.machine).toMatch(where);
    expect(lines.filter((l) => l.event === 'progress' && l.kind === 'step').map((l) => l.step)).toEqual([1, 2, 3, 4]);
    const done = lines.at(-1) as Record<string, unknown>;
    expect(done).toMatchObject({ done: true, status: 'completed', steps: 4, adapterDir: out, trainedOn: expect.stringMatching(where) });
    expect(readdirSync(out).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'machine.json', 'training_record.json']);
    expect(JSON.parse(readFileSync(join(out, 'machine.json'), 'utf8'))).toMatchObject({
      description: done.trainedOn, hostname: hostname(), engine: { name: 'lorasmith' }, address: `127.0.0.1:${remote.port}`,
    });
    // Its checkpoints were copied here as they were written (the last one kept), as a local run keeps them.
    expect(readdirSync(`${out}.checkpoints`)).toEqual(['checkpoint-4']);
    // Only the dataset was sent (the remote's library holds the starter model), and no run is left there.
    expect(readdirSync(join(remote.dataDir, 'remote', 'content'))).toEqual([expect.stringMatching(/^[0-9a-f]{64}\.file$/)]);
    await expect.poll(() => readdirSync(join(remote.dataDir, 'remote', 'runs'))).toEqual([]);
    expect(leftovers()).toEqual([]);

    // The same run started in the remote's own library, on its stored copy of the same sample.
    const model = (await call(ws, 'models.list')).result as { id: string }[];
    const dataset = ((await call(ws, 'datasets.list')).result as Dataset[]).find((d) => d.name === 'Verily (chat)') as Dataset;
    const finished = nextEvent(ws, 'train.finished', (p) => (p as { run: TrainingRun }).run.adapterName === 'there');
    await call(ws, 'train.start', { modelId: model[0]?.id, datasetId: dataset.id, settings: SETTINGS, adapterName: 'there' });
    const there = ((await finished) as { run: TrainingRun }).run;
    expect(there.status).toBe('done');
    const versions = (await call(ws, 'adapters.versions', { adapterId: there.adapterId })).result as AdapterVersion[];
    const bytes = readFileSync(join(versions[0]?.path as string, 'adapter_model.safetensors'));
    expect(readFileSync(join(out, 'adapter_model.safetensors')).equals(bytes)).toBe(true);
  }, 300_000);

  it('cancels the run on the remote at Ctrl-C, keeps its checkpoint here, and --resume finishes it', async () => {
    const out = join(temp.dir, 'resumed');
    const longer = [...OPTIONS.slice(0, OPTIONS.indexOf('--max-steps')), '--max-steps', '200', ...OPTIONS.slice(OPTIONS.indexOf('--max-steps') + 2)];
    const ctrlC = new AbortController();
    const cancelled = await train(['--out', out, ...longer, ...remoteArgs()], ctrlC.signal, (line) => {
      if (line.event === 'progress' && line.kind === 'step' && (line.step as number) >= 5) ctrlC.abort();
    });
    expect(cancelled.code).toBe(130);
    const stopped = cancelled.lines.at(-1) as { cancelled: boolean; checkpoint: string };
    expect(stopped).toMatchObject({ done: false, cancelled: true, checkpoint: expect.stringMatching(/checkpoint-\d+$/) });
    expect(stopped.checkpoint.startsWith(`${out}.checkpoints`)).toBe(true);
    expect(existsSync(out)).toBe(false);
    expect(leftovers()).toEqual([]);

    const step = Number(/checkpoint-(\d+)$/.exec(stopped.checkpoint)?.[1]);
    const resumed = await train(['--out', out, ...longer, ...remoteArgs(), '--resume', stopped.checkpoint]);
    expect(resumed.code).toBe(0);
    expect(resumed.lines.filter((l) => l.event === 'progress' && l.kind === 'step').map((l) => l.step)[0]).toBe(step + 1);
    expect(resumed.lines.at(-1)).toMatchObject({ done: true, steps: 200 });
    expect(existsSync(join(out, 'adapter_model.safetensors'))).toBe(true);
  }, 300_000);

  it('refuses a wrong token, a non-empty --out and options that run here only, writing nothing', async () => {
    const out = join(temp.dir, 'refused');
    await expect(train(['--out', out, ...OPTIONS, '--remote', `127.0.0.1:${remote.port}`, '--token', 'wrong-token-0123456789']))
      .rejects.toMatchObject({ code: 'REMOTE_ENGINE_REFUSED' });
    await expect(train(['--out', out, ...OPTIONS, '--remote', '10.0.0.7:8765', '--token', remote.token]))
      .rejects.toMatchObject({ code: 'REMOTE_ADDRESS_INVALID', message: expect.stringContaining('ssh -N -L') });
    await expect(train(['--out', out, ...OPTIONS, ...remoteArgs(), '--packing'])).rejects.toThrow(UsageError);
    await expect(train(['--out', out, ...OPTIONS, ...remoteArgs(), '--targets', 're:.*q_proj'])).rejects.toThrow(/re:PATTERN runs on this machine only/);
    await expect(train(['--out', out, ...OPTIONS, '--token', remote.token])).rejects.toThrow(/--token goes with --remote/);
    expect(existsSync(out)).toBe(false);

    const mine = join(temp.dir, 'mine');
    mkdirSync(mine);
    writeFileSync(join(mine, 'notes.txt'), 'mine');
    await expect(train(['--out', mine, ...OPTIONS, ...remoteArgs()])).rejects.toMatchObject({ code: 'OUTPUT_NOT_EMPTY' });
    expect(readdirSync(mine)).toEqual(['notes.txt']);
    expect(leftovers()).toEqual([]);
  }, 120_000);
});
