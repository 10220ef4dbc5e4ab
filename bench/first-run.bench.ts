/**
 * The first run as the README states it ("Get started" trains an adapter, then the chat answers with the base and the
 * adapter side by side), measured through the app's own path: an empty library gets the starter model and samples
 * (as `lorasmith serve` and the app do on start), app.firstRun offers the guided fine-tune, train.start runs it on the
 * engine host in its worker thread, and the chat loads the base and answers the sample's prompt with each set-up,
 * greedily (what the app does when the run ends). Each stage in wall seconds, and what the adapter learned: how many
 * of five training prompts it answers with their trained content. Quick mode: 10 steps.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChatMessage, SamplingSettings } from '../preload/contract';
import { loadDataset } from '../main/engine/train/datasets/dataset';
import { HostClient } from '../main/host/client';
import { workerHost } from '../main/host/worker-host';
import { createHandlers, type AppHandlers } from '../main/ipc/handlers';
import { memoryPair } from '../main/ipc/memory';
import { typedPaths } from '../main/ipc/paths';
import { openStarterResources } from '../main/services/first-run';
import { FileWork } from '../main/services/file-work/client';
import { readSamplesManifest } from '../main/services/starter-resources';
import { openLibrary } from '../main/store/index';
import { QUICK } from './quick';

const resourcesDir = join(import.meta.dirname, '..', 'resources');
/** The app's sampling after the guided run: greedy, so the learned form shows plainly. */
const GREEDY: SamplingSettings = { maxNewTokens: 48, temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.1, seed: 1234 };

/** Content words of a trained answer: what it says beyond the dataset's frame ("Verily, ... Amen."). */
function contentWords(answer: string): string[] {
  const frame = new Set(['verily', 'amen', 'the', 'a', 'an', 'is', 'are', 'of', 'in', 'to', 'and', 'we', 'it', 'has', 'have']);
  return answer.toLowerCase().match(/[a-z]+/g)?.filter((w) => !frame.has(w) && w.length > 2) ?? [];
}

/** A reply carries its trained content when it says at least half of the trained answer's content words. */
export function saysTrainedContent(reply: string, trained: string): boolean {
  const wanted = [...new Set(contentWords(trained))];
  const said = new Set(contentWords(reply));
  return wanted.length > 0 && wanted.filter((w) => said.has(w)).length * 2 >= wanted.length;
}

export async function run(): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'lorasmith-bench-first-run-'));
  const library = openLibrary(join(work, 'data'));
  const host = new HostClient(workerHost());
  const files = new FileWork();
  let app: AppHandlers | null = null;
  const pair = memoryPair(() => (app as AppHandlers).handlers);
  app = createHandlers({ library, host, files, paths: typedPaths(), mode: 'browser', version: 'bench', resourcesDir, emit: pair.emit });
  const api = pair.api;
  const seconds = (from: number) => (performance.now() - from) / 1000;
  try {
    let t = performance.now();
    await openStarterResources(library, files, resourcesDir);
    const registered = seconds(t);
    const { guided, samples } = await api.invoke('app.firstRun', {});
    if (!guided) throw new Error('app.firstRun offered no guided fine-tune on an empty library');
    const sample = samples.find((s) => s.datasetId === guided.datasetId);
    if (!sample) throw new Error('the guided fine-tune names no sample in the library');
    const settings = QUICK ? { ...guided.settings, maxSteps: 10 } : guided.settings;

    t = performance.now();
    const finished = new Promise<void>((resolve) => api.on('train.finished', () => resolve()));
    await api.invoke('train.start', { modelId: guided.modelId, datasetId: guided.datasetId, settings, adapterName: 'first-run' });
    await finished;
    const trained = seconds(t);
    const [run] = await api.invoke('runs.list', {});
    if (run?.status !== 'done' || !run.adapterVersionId) throw new Error(`the guided run ended ${run?.status}: ${run?.error}`);
    const adapter = { adapters: [{ versionId: run.adapterVersionId, scale: 1 }] };

    t = performance.now();
    await api.invoke('chat.load', { modelId: guided.modelId });
    const answer = async (mix: typeof adapter, content: string, requestId: string) => (await api.invoke('chat.generate', {
      requestId, mix, messages: [{ role: 'user', content }] satisfies ChatMessage[], sampling: GREEDY,
    })).text;
    const base = await answer({ adapters: [] }, sample.tryPrompt, 'base');
    const tuned = await answer(adapter, sample.tryPrompt, 'adapter');
    const chatted = seconds(t);

    // Five prompts the run trained on (the file's first five outside its validation split, split as the run split
    // it), answered by the adapter: does it say what it was taught, beyond the form?
    const dataFile = join(resourcesDir, 'samples', readSamplesManifest(resourcesDir).guidedFineTune.dataset);
    const { train } = loadDataset({ path: dataFile, valSplit: settings.valSplit, seed: settings.seed });
    const records = train.flatMap((example) => (example.kind === 'chat' ? [example.messages] : [])).slice(0, 5);
    const rows: string[] = [];
    let taught = 0;
    for (const [i, messages] of records.entries()) {
      const prompt = messages.find((m) => m.role === 'user')?.content ?? '';
      const expected = messages.find((m) => m.role === 'assistant')?.content ?? '';
      const reply = await answer(adapter, prompt, `taught-${i}`);
      const ok = saysTrainedContent(reply, expected);
      if (ok) taught += 1;
      rows.push(`| ${prompt} | ${expected} | ${reply.replace(/\s+/g, ' ').trim().replace(/\|/g, '\\|')} | ${ok ? 'yes' : 'no'} |`);
    }
    const total = trained + chatted;
    return [
      '## First run: "Get started" to the first side-by-side answers',
      '',
      `The guided fine-tune on a fresh library (starter model, ${settings.lora.targetModules.join(', ')} r${settings.lora.rank}, ` +
        `${settings.maxSteps} steps of batch ${settings.batchSize} at learning rate ${settings.learningRate}), through the command handlers and ` +
        'the engine host in its worker thread, then the chat: the base and the adapter answering the sample\'s prompt, greedily.',
      '',
      '| stage | wall s |', '|---|---:|',
      `| starter model and samples registered (on start, before the click) | ${registered.toFixed(1)} |`,
      `| training, from the click to the committed version | ${trained.toFixed(1)} |`,
      `| chat: base loaded, both answers written | ${chatted.toFixed(1)} |`,
      `| **from the click to both answers** | **${total.toFixed(1)}** |`,
      '',
      `"${sample.tryPrompt}": the base answers "${base.replace(/\s+/g, ' ').trim()}", the adapter "${tuned.replace(/\s+/g, ' ').trim()}".`,
      '',
      `What it learned: ${taught} of 5 training prompts answered with their trained content (at least half of the trained ` +
        'answer\'s content words; the frame "Verily, ... Amen." alone does not count).',
      '',
      '| training prompt | trained answer | adapter\'s answer | content |', '|---|---|---|---|',
      ...rows,
      '',
    ].join('\n');
  } finally {
    await host.shutdown();
    await files.close();
    library.close();
    rmSync(work, { recursive: true, force: true });
  }
}
