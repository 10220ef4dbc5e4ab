/**
 * Defaults that learn: the wizard's settings as a new user leaves them (its form defaults and the proposal it fills
 * in for the starter model and the Verily sample: learning rate, steps, targets, rank) trained through the app's handlers on a real
 * library and engine host, then the greedy replies to training prompts compared with the base model's. The measure
 * is the engine's business only through the text: word overlap with the target reply (test/support/word-overlap.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Api } from '../../preload/contract';
import { HostClient } from '../../main/host/client';
import { FileWork } from '../../main/services/file-work/client';
import { workerHost } from '../../main/host/worker-host';
import { createHandlers, type AppHandlers } from '../../main/ipc/handlers';
import { memoryPair } from '../../main/ipc/memory';
import { typedPaths } from '../../main/ipc/paths';
import { openLibrary, type Library } from '../../main/store/index';
import { presetSelection, targetModulesOf } from '../../renderer/src/lib/lora';
import { formFromSettings, settingsFromForm } from '../../renderer/src/lib/settings-form';
import { wordOverlap } from '../support/word-overlap';

const ROOT = join(import.meta.dirname, '../..');
const SAMPLE = join(ROOT, 'resources/samples/verily-chat.jsonl');

let dir = '';
let library: Library;
let host: HostClient;
let files: FileWork;
let app: AppHandlers;
let api: Api;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lorasmith-ipc-wizard-defaults-'));
  library = openLibrary(join(dir, 'data'));
  host = new HostClient(workerHost());
  files = new FileWork();
  const pair = memoryPair(() => app.handlers);
  app = createHandlers({ library, host, files, paths: typedPaths(), mode: 'browser', version: '0.0.0-test', emit: pair.emit });
  api = pair.api;
});

afterAll(async () => {
  await host.shutdown();
  await files.close();
  library.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the wizard\'s proposed defaults on the starter model', () => {
  it('train replies that move towards the training data', async () => {
    const model = await api.invoke('models.import', { path: join(ROOT, 'resources/starter'), mode: 'reference' });
    const dataset = await api.invoke('datasets.import', { path: SAMPLE });
    const modules = await api.invoke('models.modules', { id: model.id });
    const proposal = await api.invoke('train.propose', { modelId: model.id, datasetId: dataset.id });
    // What the wizard sends after filling in the proposal (WizardState.applyProposal) on its own form defaults.
    const form = { ...formFromSettings({}), learningRate: String(proposal.learningRate), maxSteps: String(proposal.maxSteps), epochs: '',
      rank: String(proposal.rank), alpha: String(proposal.alpha) };
    const settings = settingsFromForm(form, targetModulesOf(modules, presetSelection(modules, proposal.targets)));
    expect(settings).toMatchObject({ learningRate: 0.0029, maxSteps: 100, lora: { rank: 8, alpha: 16 } });
    expect([...settings.lora.targetModules].sort()).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    expect((await api.invoke('train.propose', { modelId: model.id, datasetId: dataset.id, settings })).effect.warnings).toEqual([]);

    const run = await api.invoke('train.start', { modelId: model.id, datasetId: dataset.id, settings, adapterName: 'verily' });
    const finished = await new Promise<string | null>((resolve) => {
      const off = api.on('train.finished', (p) => { if (p.run.id === run.id) { off(); resolve(p.run.adapterVersionId); } });
    });
    expect(finished).not.toBeNull();

    await api.invoke('chat.load', { modelId: model.id });
    const sampling = { maxNewTokens: 20, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1 };
    const rows = readFileSync(SAMPLE, 'utf8').trim().split('\n').slice(0, 5)
      .map((l) => JSON.parse(l) as { messages: { role: 'user' | 'assistant'; content: string }[] });
    let closer = 0;
    let baseTotal = 0;
    let tunedTotal = 0;
    for (const [i, row] of rows.entries()) {
      const messages = row.messages.slice(0, 1);
      const target = row.messages[1]?.content as string;
      const base = await api.invoke('chat.generate', { requestId: `base-${i}`, mix: { adapters: [] }, messages, sampling });
      const tuned = await api.invoke('chat.generate', { requestId: `tuned-${i}`, mix: { adapters: [{ versionId: finished as string, scale: 1 }] }, messages, sampling });
      const [b, t] = [wordOverlap(base.text, target), wordOverlap(tuned.text, target)];
      baseTotal += b;
      tunedTotal += t;
      if (t > b) closer++;
    }
    // Most training prompts answer closer to their targets than the base model does, and so does the average.
    expect(closer).toBeGreaterThanOrEqual(3);
    expect(tunedTotal / rows.length).toBeGreaterThan(baseTotal / rows.length);
  }, 600_000);
});
