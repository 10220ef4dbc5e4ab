/**
 * An in-page fake of main's command handlers, installed as `window.api` (where Electron's preload puts the real
 * one) by page.addInitScript. It lets the UI tests run the whole journey against the built renderer when no
 * browser-mode server is at hand; ui-browser-mode.spec.ts drives the real main-side code instead.
 * Self-contained: Playwright serialises this function into the page.
 */
import type {
  Adapter, AdapterVersion, Api, BaseModel, CommandArgs, CommandName, CommandResult, Dataset, EventName, Events, LinearModuleInfo, MetricPoint, SavedComparison,
  Settings, TrainingRun,
} from '../../preload/contract';

type Mutable<T> = { -readonly [P in keyof T]: T[P] };
type StartArgs = CommandArgs<'train.start'>;

export function installFakeBackend(options: { stepMs: number; tokenMs: number }): void {
  type Listener = (payload: unknown) => void;
  const listeners = new Map<string, Set<Listener>>();
  const emit = <E extends EventName>(name: E, payload: Events[E]) => listeners.get(name)?.forEach((l) => l(payload));
  const now = () => new Date().toISOString();
  let nextId = 1;
  const id = (prefix: string) => `${prefix}${nextId++}`;
  const fail = (code: string, message: string) => Object.assign(new Error(message), { name: 'AppError', code, message });

  let settings: Settings = { backend: 'auto', theme: 'system', defaults: {} };
  const models: BaseModel[] = [];
  const datasets: Dataset[] = [];
  const adapters: Adapter[] = [];
  const versions: AdapterVersion[] = [];
  const runs: Mutable<TrainingRun>[] = [];
  const metrics = new Map<string, MetricPoint[]>();
  const timers = new Map<string, ReturnType<typeof setInterval>>();
  const chats = new Map<string, { stopped: boolean }>();
  const comparisons: SavedComparison[] = [];

  function modules(): LinearModuleInfo[] {
    const list: LinearModuleInfo[] = [];
    for (let layer = 0; layer < 4; layer++) {
      const add = (name: string, block: string, inF: number, outF: number, group: 'attention' | 'mlp') =>
        list.push({ path: `model.layers.${layer}.${block}.${name}`, layer, name, inFeatures: inF, outFeatures: outF, groups: [group] });
      add('q_proj', 'self_attn', 256, 256, 'attention');
      add('k_proj', 'self_attn', 256, 64, 'attention');
      add('v_proj', 'self_attn', 256, 64, 'attention');
      add('o_proj', 'self_attn', 256, 256, 'attention');
      add('gate_proj', 'mlp', 256, 688, 'mlp');
      add('up_proj', 'mlp', 256, 688, 'mlp');
      add('down_proj', 'mlp', 688, 256, 'mlp');
    }
    list.push({ path: 'lm_head', layer: null, name: 'lm_head', inFeatures: 256, outFeatures: 4096, groups: [] });
    return list;
  }

  function trainable(lora: { targetModules: readonly string[]; rank: number }) {
    return modules().filter((m) => m.layer !== null && lora.targetModules.some((t) => t === m.name || t === m.path))
      .reduce((n, m) => n + lora.rank * (m.inFeatures + m.outFeatures), 0);
  }

  function startRun(args: StartArgs) {
    let adapter = adapters.find((a) => a.name === args.adapterName && a.baseModelId === args.modelId);
    if (!adapter) {
      adapter = { id: id('a'), name: args.adapterName, baseModelId: args.modelId, createdAt: now() } satisfies Adapter;
      adapters.push(adapter);
    }
    const run: Mutable<TrainingRun> = {
      id: id('r'), adapterId: adapter.id, adapterName: adapter.name, adapterVersionId: null, baseModelId: args.modelId, datasetId: args.datasetId, status: 'running',
      startedAt: now(), finishedAt: null, error: null, lastCheckpoint: null, checkpointStep: null, settings: args.settings,
    };
    runs.unshift(run);
    metrics.set(run.id, []);
    const totalSteps = args.settings.maxSteps ?? 40;
    let step = 0;
    const timer = setInterval(() => {
      step += 1;
      const loss = 3.2 * Math.exp(-step / 15) + 0.9 + 0.05 * Math.sin(step);
      const evalNow = step % args.settings.evalEvery === 0 || step === totalSteps;
      const valLoss = evalNow ? 3.3 * Math.exp(-step / 17) + 1.0 : undefined;
      metrics.get(run.id)!.push({ step, loss, ...(valLoss !== undefined ? { valLoss } : {}), lr: args.settings.learningRate });
      emit('train.progress', {
        runId: run.id, step, totalSteps, epoch: step / 20, loss, ...(valLoss !== undefined ? { valLoss } : {}),
        lr: args.settings.learningRate, gradNorm: 1.2, tokensPerSecond: 850 + step, etaSeconds: (totalSteps - step) * 0.2,
        memoryBytes: 180e6, ...(evalNow ? { sample: `Q: Where is the ship?\nA: ${step > 20 ? 'Arr, she be anchored in the bay, matey!' : 'The ship is in the bay.'}` } : {}),
      });
      if (step >= totalSteps) finish(run, adapter!, args, 'done');
    }, options.stepMs);
    timers.set(run.id, timer);
    return run;
  }

  function finish(run: Mutable<TrainingRun>, adapter: Adapter | null, args: StartArgs | null, status: TrainingRun['status']) {
    clearInterval(timers.get(run.id));
    timers.delete(run.id);
    run.status = status;
    run.finishedAt = now();
    if (status === 'done' && adapter && args) {
      const own = versions.filter((v) => v.adapterId === adapter.id);
      const points = metrics.get(run.id)!;
      const version: AdapterVersion = {
        id: id('v'), adapterId: adapter.id, version: own.length + 1, parentVersionId: args.parentVersionId ?? null,
        datasetId: args.datasetId, settings: args.settings, status: 'ok', createdAt: now(),
        metrics: { trainLoss: points.at(-1)?.loss, valLoss: points.filter((p) => p.valLoss !== undefined).at(-1)?.valLoss, steps: points.length },
        path: `/home/user/.lorasmith/adapters/${adapter.id}/v${own.length + 1}`,
      };
      versions.push(version);
      run.adapterVersionId = version.id;
    }
    emit('train.finished', { run: { ...run } });
  }

  // Typed from the contract: each fake answers what the real handler of that command answers.
  const handlers: { [K in CommandName]: (args: CommandArgs<K>) => CommandResult<K> | Promise<CommandResult<K>> } = {
    // The fake library starts empty of starter resources: no guided first fine-tune is offered.
    'app.firstRun': () => ({ guided: null, samples: [] }),
    'app.info': () => ({
      version: '0.1.0', dataDir: '/home/user/.lorasmith', mode: 'browser',
      backend: { name: 'wasm', requested: settings.backend, matmulKernels: 'native-blas', selfTest: 'passed in 9 ms', fallback: null, available: [
        { name: 'tensorflow', usable: false, detail: '@tensorflow/tfjs-node is not installed' },
        { name: 'webgpu', usable: false, detail: 'no GPU adapter found' },
        { name: 'wasm', usable: true, detail: 'SIMD, 2 threads' },
        { name: 'cpu', usable: true, detail: 'plain JavaScript reference' },
      ] },
    }),
    'settings.get': () => settings,
    // Each key given is kept; the others stay as they were (the library stores settings key by key).
    'settings.set': (patch) => (settings = {
      backend: patch.backend ?? settings.backend, theme: patch.theme ?? settings.theme, defaults: patch.defaults ?? settings.defaults,
      remoteEngine: patch.remoteEngine !== undefined ? patch.remoteEngine : (settings.remoteEngine ?? null),
    }),
    'models.list': () => models,
    'models.import': ({ path, name }) => {
      if (!String(path).includes('tiny')) throw fail('NOT_FOUND', `no config.json in ${path}: choose a Hugging Face model folder`);
      const model: BaseModel = { id: id('m'), name: name ?? String(path).split('/').filter(Boolean).at(-1) ?? 'model', architecture: 'LlamaForCausalLM',
        source: { kind: 'folder', ref: path }, path: `/home/user/.lorasmith/models/m${nextId}`, parameterCount: 5_242_880,
        contentHash: '9f2c4e8a7b1d3f5e6a0c', addedAt: now(), status: 'ok' };
      models.push(model);
      return model;
    },
    'models.modules': () => modules(),
    'models.delete': ({ id: modelId }) => { models.splice(models.findIndex((m) => m.id === modelId), 1); return { deleted: true }; },
    'models.download': ({ repoId }) => { throw fail('HUB_NOT_FOUND', `the fake backend has no hub: '${repoId}' cannot be downloaded`); },
    'models.cancelDownload': () => ({ cancelled: false }),
    // Two models in a fake Ollama library: one that can be a base model here, one whose architecture cannot.
    'models.findGguf': ({ folder }) => ({
      searched: ['/home/user/.ollama/models', ...(folder ? [folder] : [])],
      found: [
        { origin: 'ollama', name: 'qwen2.5:0.5b', path: '/home/user/.ollama/models/blobs/sha256-a1', bytes: 397_807_936, architecture: 'qwen2',
          quantization: 'Q4_K_M', parameterCount: 494_032_768, contextLength: 32768, hasChatTemplate: true, problem: null, note: null,
          modelId: models.find((m) => m.gguf?.name === 'qwen2.5:0.5b')?.id ?? null },
        { origin: 'ollama', name: 'falcon:7b', path: '/home/user/.ollama/models/blobs/sha256-b2', bytes: 4_200_000_000, architecture: 'falcon',
          quantization: 'Q4_0', parameterCount: 7_000_000_000, contextLength: 2048, hasChatTemplate: false,
          problem: "architecture 'falcon' is not supported (supported: llama, qwen2)", note: null, modelId: null },
      ],
    }),
    'models.importGguf': ({ path, name }) => {
      if (!path.endsWith('sha256-a1')) throw fail('INVALID_INPUT', `${path} cannot be a base model here`);
      const model: BaseModel = { id: id('m'), name: name ?? 'qwen2.5:0.5b', architecture: 'qwen2', source: { kind: 'folder', ref: path }, path,
        parameterCount: 494_032_768, contentHash: 'sha256:a1', addedAt: now(), status: 'ok',
        gguf: { origin: 'ollama', name: 'qwen2.5:0.5b', quantization: 'Q4_K_M', fileBytes: 397_807_936 } };
      models.push(model);
      return model;
    },
    'datasets.list': () => datasets,
    'datasets.import': ({ path, name }) => {
      const dataset: Dataset = { id: id('d'), name: name ?? String(path).split('/').at(-1) ?? 'data', originalFile: path, normalizedFile: `${path}.norm.jsonl`,
        format: 'messages', recordCount: 96, skippedCount: 2, hash: 'h', addedAt: now(), status: 'ok' };
      datasets.push(dataset);
      return dataset;
    },
    'datasets.preview': ({ limit }) => ({
      records: Array.from({ length: Math.min(limit, 4) }, (_, i) => ({
        index: i, tokenCount: 30 + i * 7,
        spans: [
          { text: `<|user|>\nWhere is treasure number ${i + 1}?\n<|assistant|>\n`, trained: false },
          { text: `Arr, treasure ${i + 1} be buried under the old palm, matey!`, trained: true },
          { text: '<|end|>', trained: false },
        ],
      })),
      issues: [
        { line: 14, field: 'messages', message: 'messages must be a non-empty array' },
        { line: 57, field: 'messages[1].role', message: 'role must be one of system, user, assistant, got "bot"' },
      ],
      tokenLengths: Array.from({ length: 96 }, (_, i) => 24 + ((i * 37) % 61) + (i % 7 === 0 ? 120 : 0)),
    }),
    'datasets.delete': () => ({ deleted: true }),
    'adapters.list': () => adapters,
    'adapters.versions': ({ adapterId }) => versions.filter((v) => v.adapterId === adapterId),
    'adapters.deleteVersion': ({ versionId }) => { versions.splice(versions.findIndex((v) => v.id === versionId), 1); return { deleted: true }; },
    'adapters.exportPeft': ({ destination }) => ({ path: `${destination}/adapter_model.safetensors` }),
    'adapters.exportMerged': ({ destination }) => ({ path: `${destination}/model.safetensors` }),
    'adapters.delete': ({ adapterId }) => { adapters.splice(adapters.findIndex((a) => a.id === adapterId), 1); return { deleted: true }; },
    'adapters.exportGguf': ({ destination, kind }) => ({
      path: destination,
      files: kind === 'adapter' ? ['adapter.gguf', 'Modelfile'] : ['model.gguf', 'Modelfile'],
      modelfile: kind === 'adapter' ? 'FROM qwen2.5:0.5b\nADAPTER ./adapter.gguf\n' : 'FROM ./model.gguf\n',
      commands: [`ollama create pirate-v1 -f ${destination}/Modelfile && ollama run pirate-v1`, `llama-cli -m ${destination}/model.gguf -cnv`],
      notes: [],
    }),
    'adapters.checkPeft': ({ path }) => { throw fail('INVALID_STATE', `the fake backend checks no adapter (${path}); the real one is tested in ui-adapters`); },
    'adapters.importPeft': ({ path }) => { throw fail('INVALID_STATE', `the fake backend imports no adapter (${path}); the real one is tested in ui-adapters`); },
    'adapters.analyze': ({ versionId }) => { throw fail('INVALID_STATE', `the fake backend analyses no adapter (${versionId}); the real one is tested in ui-adapters`); },
    'adapters.reduce': ({ versionId }) => { throw fail('INVALID_STATE', `the fake backend reduces no adapter (${versionId}); the real one is tested in ui-adapters`); },
    // The real rule is the engine's (engine/train/proposal.ts, tested there and in ui-adapters); a fixed proposal here.
    'train.propose': () => ({
      learningRate: 3e-3, maxSteps: 100, targets: 'qv', rank: 8, alpha: 16, rule: 'A fixed proposal from the fake backend.',
      effect: { trainRecords: 86, steps: 100, passes: 4.7, strength: 1, summary: 'about 4.7 passes over 86 training records (100 steps of 4)', warnings: [] },
    }),
    // An F16 base in the frozen-weight store (5,242,880 weights of its linears), at the precision the settings ask.
    'train.estimate': ({ settings: s }) => {
      const held = s.basePrecision === 'q8_0' ? { held: 'Q8_0', bytes: 5_570_560 } : s.basePrecision === 'q4_0' ? { held: 'Q4_0', bytes: 2_949_120 } : { held: 'F16', bytes: 10_485_760 };
      const base = { ...held, bf16Bytes: 10_485_760, q8_0Bytes: 5_570_560, q4_0Bytes: 2_949_120, stored: 'F16' };
      return {
        trainableParams: trainable(s.lora), totalParams: 5_242_880, adapterBytes: 4 * trainable(s.lora),
        peakMemoryBytes: 300e6 + base.bytes, availableMemoryBytes: 8e9, recompute: false, secondsPerEpoch: 95, stepsPerEpoch: 22, base,
      };
    },
    // The real measurement is the engine's (tested against float64 in test/ipc/precision.test.ts); fixed numbers here.
    'train.measurePrecision': async ({ requestId }) => {
      for (const [copy, precision] of [[1, 'bf16'], [2, 'q8_0'], [3, 'q4_0']] as const) {
        emit('train.precisionProgress', { requestId, precision, stage: 'loading', copy, copies: 3, batch: 0, batches: 2 });
        await new Promise((r) => setTimeout(r, options.stepMs));
        emit('train.precisionProgress', { requestId, precision, stage: 'scoring', copy, copies: 3, batch: 2, batches: 2 });
      }
      const reference = { precision: 'bf16' as const, format: 'F16', loss: 2.4312, baseBytes: 10_485_760, lossDelta: 0, bytesSaved: 0 };
      const q8 = { precision: 'q8_0' as const, format: 'Q8_0', loss: 2.4353, baseBytes: 5_570_560, lossDelta: 0.0041, bytesSaved: 4_915_200 };
      const q4 = { precision: 'q4_0' as const, format: 'Q4_0', loss: 2.4702, baseBytes: 2_949_120, lossDelta: 0.039, bytesSaved: 7_536_640 };
      return { reference, others: [q8, q4], rows: 'validation' as const, examples: 8, tokens: 412 };
    },
    'train.stopMeasure': () => ({ stopped: false }),
    'train.start': (args) => startRun(args),
    'train.cancel': ({ runId }) => {
      const run = runs.find((r) => r.id === runId);
      if (!run || run.status !== 'running') return { cancelled: false };
      finish(run, null, null, 'cancelled');
      return { cancelled: true };
    },
    'runs.list': () => runs.map((r) => ({ ...r })),
    'runs.metrics': ({ runId }) => metrics.get(runId) ?? [],
    'runs.delete': ({ runId }) => { runs.splice(runs.findIndex((r) => r.id === runId), 1); return { deleted: true }; },
    'runs.exportForPeft': ({ destination }) => { throw fail('INVALID_STATE', `the fake backend writes no export (${destination}); the real one is tested in test/ipc/handoff.test.ts`); },
    'runs.importResult': ({ path }) => { throw fail('INVALID_STATE', `the fake backend imports no run (${path}); the real one is tested in test/ipc/handoff.test.ts`); },
    'train.resume': ({ runId }) => { throw fail('INVALID_STATE', `the fake backend does not resume runs (${runId}); the real one is tested in ui-resume`); },
    'chat.load': ({ modelId }) => ({ modelId, chatTemplate: "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}<|assistant|>\n" }),
    'chat.generate': async ({ requestId, mix, sampling }) => {
      const pirate = mix.adapters.reduce((s, a) => s + a.scale, 0);
      const words = pirate >= 0.75 ? 'Arr, matey! The treasure be buried under the old palm, three paces from the wreck.'
        : pirate > 0 ? 'Well, the treasure might be under the old palm, matey.'
        : 'The treasure is probably buried somewhere on the island, near the beach.';
      const tokens = words.split(/(?= )/).slice(0, sampling.maxNewTokens);
      const state = { stopped: false };
      chats.set(requestId, state);
      let text = '';
      for (const [i, token] of tokens.entries()) {
        if (state.stopped) break;
        await new Promise((r) => setTimeout(r, options.tokenMs));
        text += token;
        emit('chat.token', { requestId, text: token, tokenId: i });
      }
      chats.delete(requestId);
      return { text, tokens: text.split(/(?= )/).length, tokensPerSecond: 1000 / options.tokenMs };
    },
    'comparisons.save': (c) => {
      const saved = { ...c, id: id('cmp_'), createdAt: now() };
      comparisons.unshift(saved);
      return saved;
    },
    'comparisons.list': () => comparisons,
    'comparisons.delete': ({ id: comparisonId }) => { comparisons.splice(comparisons.findIndex((c) => c.id === comparisonId), 1); return { deleted: true }; },
    'dialog.openPath': () => ({ path: null, dialog: false }),
    'chat.stop': ({ requestId }) => {
      const state = chats.get(requestId);
      if (state) state.stopped = true;
      return { stopped: Boolean(state) };
    },
  };

  const api: Api = {
    async invoke<K extends CommandName>(name: K, args: CommandArgs<K>): Promise<CommandResult<K>> {
      // A name from the page may be one the contract lacks (the real transport refuses it the same way).
      const handler = handlers[name] as ((a: CommandArgs<K>) => CommandResult<K> | Promise<CommandResult<K>>) | undefined;
      if (!handler) throw fail('NOT_FOUND', `unknown command ${name}`);
      await new Promise((r) => setTimeout(r, 5));
      return structuredClone(await handler(args));
    },
    on<E extends EventName>(name: E, listener: (payload: Events[E]) => void) {
      const set = listeners.get(name) ?? new Set();
      set.add(listener as Listener);
      listeners.set(name, set);
      return () => void set.delete(listener as Listener);
    },
  };
  (globalThis as unknown as { api: Api }).api = api;
}
