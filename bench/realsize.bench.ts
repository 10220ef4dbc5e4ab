/**
 * Real sizes: Qwen2.5-0.5B's and Qwen2.5-1.5B's shapes (random weights in BF16 safetensors, the hub's config.json
 * fields), LoRA r=16 alpha=32 on all seven linear kinds, batch 2 × 256 tokens. For each: the engine's LoRA step
 * (the real loadModel, injectAdapter and trainLoop), its tokens/s and peak resident memory, with and without
 * activation recomputation, against the memory estimate train --dry-run and the wizard show; greedy decoding
 * tokens/s; and the same measured for a PyTorch peer on the same shape (bench/train_torch.py: float32 as PyTorch
 * users run it on a CPU, the best of 1 and 2 threads). Every measurement runs in a child process of its own, so its
 * peak RSS is its own. From those, what trains on a 16 GB laptop.
 *
 * LORASMITH_BENCH_QUICK=1 runs the same code at reduced shapes (a correctness check; `npm run bench` then writes
 * nothing). LORASMITH_BENCH_SHAPES=qwen2.5-0.5b (names, comma-separated) measures only those shapes, where the
 * machine is quiet for less time than both take (the 1.5B shape alone takes about half an hour on 2 cores); the
 * section's heading names what was measured.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parameterCount, QWEN25_05B, QWEN25_15B, randomQwen2Folder, type Qwen2Shape } from './random-model';
import { QUICK } from './quick';

// Quick shapes keep the real vocabulary: llama.cpp reads the tokenizer of its Qwen2 vocabulary file, 151,936 tokens.
const SHAPES: readonly Qwen2Shape[] = QUICK
  ? [{ name: 'quick-a', hidden: 112, layers: 3, heads: 14, kvHeads: 2, intermediate: 608, vocab: 151936 },
    { name: 'quick-b', hidden: 192, layers: 2, heads: 12, kvHeads: 2, intermediate: 1120, vocab: 151936 }]
  : [QWEN25_05B, QWEN25_15B].filter((shape) => chosenShapes() === null || chosenShapes()?.includes(shape.name));
/** The shape names LORASMITH_BENCH_SHAPES chooses, or null for every shape. */
function chosenShapes(): string[] | null {
  const names = process.env.LORASMITH_BENCH_SHAPES?.split(',').map((n) => n.trim()).filter((n) => n !== '');
  return names === undefined || names.length === 0 ? null : names;
}
/** Qwen/Qwen2.5-3B's shape: estimated only, for the laptop table. */
const QWEN25_3B: Qwen2Shape = { name: 'qwen2.5-3b', hidden: 2048, layers: 36, heads: 16, kvHeads: 2, intermediate: 11008, vocab: 151936 };
const RUN = { batch: 2, seq: QUICK ? 32 : 256, rank: 16, alpha: 32, steps: QUICK ? 1 : 2, newTokens: QUICK ? 8 : 32, prompt: 16 };
const LORA = { targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], rank: RUN.rank, alpha: RUN.alpha, dropout: 0 };
/** What a 16 GB laptop leaves a training run: the OS, a desktop and a browser hold about 4 GB. */
const LAPTOP_USABLE = 12e9;
const PYTHON = '/usr/bin/python3';

interface EngineTrain {
  readonly backend: string; readonly kernels: string; readonly recompute: boolean;
  readonly stepSeconds: number; readonly tokensPerSecond: number; readonly loadSeconds: number;
  readonly peakRssBytes: number; readonly estimateBytes: number; readonly parameters: number; readonly trainable: number;
}
interface EngineDecode { readonly backend: string; readonly kernels: string; readonly precision: string; readonly decodeTokensPerSecond: number; readonly peakRssBytes: number }
interface LlamaCppDecode { readonly type: string; readonly threads: number; readonly decodeTokensPerSecond: number; readonly peakRssBytes: number }
interface TorchReport { readonly threads: number; readonly stepSeconds?: number; readonly tokensPerSecond?: number; readonly decodeTokensPerSecond?: number; readonly peakRssBytes: number }

// ---- measurements, each run in a child process (`node … realsize.bench.ts <what> <args>`) ----

/**
 * Starts the backend a plain `lorasmith train` uses (wasm with the native kernels and frozen store), or cpu where
 * the run's tensors would not fit wasm's 4 GB heap (what the refusal then tells the user to pick).
 */
async function startBackend(dir: string, recompute: boolean) {
  const { initBackend } = await import('../main/engine/backend/index');
  const { inspectModel } = await import('../main/engine/models/inspect');
  const { estimateMemory, modelDirPlan, tensorBytes } = await import('../main/engine/train/memory');
  const summary = inspectModel(dir);
  const planOn = () => modelDirPlan(summary, LORA, { batchSize: RUN.batch, seqLen: RUN.seq, recompute });
  let info = await initBackend('wasm', { native: {} });
  let plan = planOn();
  if (plan.tensorHeapBytes !== null && tensorBytes(plan) > 0.9 * plan.tensorHeapBytes) {
    info = await initBackend('cpu', { native: {} });
    plan = planOn();
  }
  // the estimate `train --dry-run` prints for these settings, made before loading as the CLI makes it
  return { info, summary, estimate: estimateMemory(plan) };
}

async function engineTrain(dir: string, recompute: boolean): Promise<EngineTrain> {
  const { loadModel } = await import('../main/engine/models/registry');
  const { adapterVariables, injectAdapter } = await import('../main/engine/lora/inject');
  const { trainLoop } = await import('../main/engine/train/loop');
  const { info, summary, estimate } = await startBackend(dir, recompute);
  const loadStarted = performance.now();
  const model = await loadModel(dir);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const variables = adapterVariables(injectAdapter(model, 'bench', LORA));
  const vocab = summary.config.vocabSize;
  const rows = Array.from({ length: RUN.batch * (RUN.steps + 1) }, (_, r) => {
    const ids = Array.from({ length: RUN.seq }, (_, t) => (r * 7919 + t * 104729) % vocab);
    return { line: r + 1, ids, train: ids.map(() => 1) };
  });
  const stamps: number[] = [performance.now()];
  await trainLoop({
    model, variables, trainRows: rows, padId: 0,
    hyperparameters: { maxSteps: RUN.steps + 1, batchSize: RUN.batch, learningRate: 1e-4, seed: 1, checkpointEvery: 0, recompute: recompute ? 'on' : 'off' },
    onProgress: (e) => { if (e.kind === 'step') stamps.push(performance.now()); },
  });
  const gaps = stamps.slice(2).map((t, i) => (t - (stamps[i + 1] as number)) / 1000).sort((a, b) => a - b); // after the warm-up step
  const stepSeconds = gaps[Math.floor(gaps.length / 2)] ?? Number.NaN;
  return {
    backend: info.name, kernels: info.matmulKernels, recompute, stepSeconds, tokensPerSecond: (RUN.batch * RUN.seq) / stepSeconds, loadSeconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024, estimateBytes: estimate.peakBytes,
    parameters: model.parameterCount(), trainable: [...variables.values()].reduce((s, v) => s + v.size, 0),
  };
}

async function engineDecode(dir: string, precision: 'stored' | 'q8_0'): Promise<EngineDecode> {
  const { loadModel } = await import('../main/engine/models/registry');
  const { generate } = await import('../main/engine/generate/generate');
  const { info } = await startBackend(dir, true);
  const model = await loadModel(dir, { precision });
  const prompt = Array.from({ length: RUN.prompt }, (_, i) => (i * 37) % 4096);
  await generate(model, prompt, { maxNewTokens: 2, eosTokenIds: [] }); // warm-up
  let best = 0;
  for (let i = 0; i < 2; i++) best = Math.max(best, (await generate(model, prompt, { maxNewTokens: RUN.newTokens, eosTokenIds: [] })).decodeTokensPerSecond);
  return { backend: info.name, kernels: info.matmulKernels, precision: precision === 'q8_0' ? 'Q8_0' : 'BF16', decodeTokensPerSecond: best, peakRssBytes: process.resourceUsage().maxRSS * 1024 };
}

/**
 * The model as a GGUF file of `type` (the engine's own exporter, the tokenizer from llama.cpp's Qwen2 vocabulary
 * file: 151,936 tokens as the model's table), cached beside the folder.
 */
async function exportGguf(dir: string, type: 'BF16' | 'Q8_0'): Promise<{ path: string }> {
  const { existsSync: exists, renameSync } = await import('node:fs');
  const path = join(dir, `model-${type}.gguf`);
  if (exists(path)) return { path };
  const { initBackend } = await import('../main/engine/backend/index');
  const { loadModel } = await import('../main/engine/models/registry');
  const { exportGgufModel } = await import('../main/engine/adapters/gguf-model-export');
  const { llamaCppVocab } = await import('../test/support/llama-cpp/index');
  await initBackend('cpu', { native: {} });
  const model = await loadModel(dir);
  try {
    await exportGgufModel(model, llamaCppVocab('qwen2'), `${path}.tmp`, { type, name: basename(dir) });
    renameSync(`${path}.tmp`, path);
  } finally {
    model.dispose();
  }
  return { path };
}

/** Greedy decoding in llama.cpp (node-llama-cpp's prebuilt CPU library), best of 2 runs after a warm-up. */
async function llamaCppDecode(path: string, threads: number): Promise<LlamaCppDecode> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const prompt = Array.from({ length: RUN.prompt }, (_, i) => (i * 37) % 4096);
  const run = async (tokens: number): Promise<number> => {
    const context = await model.createContext({ contextSize: 128, batchSize: RUN.prompt, threads, flashAttention: false });
    try {
      const sequence = context.getSequence();
      let input: number[] = prompt;
      let started = 0;
      for (let i = 0; i < tokens; i++) {
        const last = input.length - 1;
        const results = await sequence.controlledEvaluate(input.map((t, j) => (j === last ? [t as never, { generateNext: { token: true } }] : (t as never))));
        const next = results[last]?.next.token;
        if (next === undefined || next === null) throw new Error('llama.cpp produced no token');
        if (i === 0) started = performance.now(); // the prompt pass is not decoding
        input = [next];
      }
      return (tokens - 1) / ((performance.now() - started) / 1000);
    } finally {
      await context.dispose();
    }
  };
  await run(2);
  const best = Math.max(await run(RUN.newTokens), await run(RUN.newTokens));
  await model.dispose();
  return { type: basename(path).replace(/^model-|\.gguf$/g, ''), threads, decodeTokensPerSecond: best, peakRssBytes: process.resourceUsage().maxRSS * 1024 };
}

function torch(mode: 'lora' | 'decode', shape: Qwen2Shape, threads: number): TorchReport {
  const args = [join(import.meta.dirname, 'train_torch.py'), '--mode', mode, '--threads', String(threads), '--steps', String(RUN.steps),
    '--hidden', String(shape.hidden), '--layers', String(shape.layers), '--heads', String(shape.heads), '--kv-heads', String(shape.kvHeads),
    '--mlp', String(shape.intermediate), '--vocab', String(shape.vocab), '--batch', String(RUN.batch), '--seq', String(RUN.seq),
    '--rank', String(RUN.rank), '--alpha', String(RUN.alpha), '--targets', 'all', '--qkv-bias', '--rope-theta', '1000000',
    '--prompt', String(RUN.prompt), '--new-tokens', String(RUN.newTokens)];
  const run = spawnSync(PYTHON, args, {
    encoding: 'utf8', timeout: 3_600_000, env: { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) },
  });
  if (run.status !== 0) throw new Error(`train_torch.py --mode ${mode} failed: ${(run.stderr || String(run.error)).trim().split('\n').pop()}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string) as TorchReport;
}

/** Runs this file as a child measuring one thing; its last stdout line is the JSON report. */
function child<T>(...args: string[]): T {
  const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args], {
    encoding: 'utf8', timeout: 3_600_000, maxBuffer: 64 * 2 ** 20,
  });
  if (run.status !== 0) throw new Error(`${args.join(' ')} failed (exit ${run.status ?? run.signal}): ${(run.stderr || '').trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string) as T;
}

// ---- the section ----

const GB = (b: number) => (b / 1e9).toFixed(2);
const ratio = (a: number, b: number) => (a / b).toFixed(2);

/** The estimate for a shape with no folder: its config and linears as inspectModel would report them, on cpu with the native kernels. */
async function estimateOfShape(shape: Qwen2Shape): Promise<number> {
  const { initBackend } = await import('../main/engine/backend/index');
  const { linearSpecsOf } = await import('../main/engine/models/inspect');
  const { estimateMemory, modelDirPlan } = await import('../main/engine/train/memory');
  await initBackend('cpu', { native: {} });
  const config = {
    modelType: 'qwen2', vocabSize: shape.vocab, hiddenSize: shape.hidden, numLayers: shape.layers, numHeads: shape.heads, numKvHeads: shape.kvHeads,
    headDim: shape.hidden / shape.heads, intermediateSize: shape.intermediate, maxPositions: 32768, tieWordEmbeddings: true,
    bosTokenId: 151643, eosTokenIds: [151643], padTokenId: null,
  };
  const linears = linearSpecsOf({ ...config, raw: {} });
  const summary = { config, linears, parameterCount: parameterCount(shape), dtypes: { BF16: 1 } };
  return estimateMemory(modelDirPlan(summary, LORA, { batchSize: RUN.batch, seqLen: RUN.seq, recompute: true })).peakBytes;
}

function tryChild<T>(notes: string[], what: string, ...args: string[]): T | null {
  try {
    return child<T>(...args);
  } catch (error) {
    notes.push(`${what}: not measured (${(error as Error).message})`);
    return null;
  }
}

const bestOf = <T>(rows: readonly (T | null)[], better: (a: T, b: T) => boolean): T | null =>
  rows.reduce<T | null>((best, r) => (r === null ? best : best === null || better(r, best) ? r : best), null);

export async function run(): Promise<string> {
  const torchThere = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  const train = [
    '| model | run | backend | step (s) | tokens/s | peak RSS (GB) | estimate (GB) | estimate / peak |',
    '|---|---|---|---:|---:|---:|---:|---:|',
  ];
  const decodeRows = ['| model | engine | weights | tokens/s | peak RSS (GB) |', '|---|---|---|---:|---:|'];
  const laptop: string[] = [];
  const notes: string[] = [];
  for (const shape of SHAPES) {
    const dir = randomQwen2Folder(shape);
    const label = shape.name;
    // Training: the engine with and without recomputation (1.5B only with it: without, its activations alone pass 12 GB).
    const engine = (QUICK || shape === QWEN25_05B ? [false, true] : [true])
      .map((recompute) => tryChild<EngineTrain>(notes, `${label} LoRA step, recompute ${recompute ? 'on' : 'off'}`, 'train', dir, String(recompute)))
      .filter((r): r is EngineTrain => r !== null);
    for (const r of engine) {
      train.push(`| ${label} | lorasmith LoRA, recompute ${r.recompute ? 'on' : 'off'} | ${r.backend} | ${r.stepSeconds.toFixed(1)} | ${r.tokensPerSecond.toFixed(0)} | ` +
        `${GB(r.peakRssBytes)} | ${GB(r.estimateBytes)} | ${ratio(r.estimateBytes, r.peakRssBytes)} |`);
    }
    let torchTrain: TorchReport | null = null;
    let torchDecode: TorchReport | null = null;
    if (torchThere) {
      torchTrain = bestOf([1, 2].map((t) => tryRun(notes, `${label} PyTorch step, ${t} thread(s)`, () => torch('lora', shape, t))), (a, b) => (a.stepSeconds ?? Infinity) < (b.stepSeconds ?? Infinity));
      torchDecode = bestOf([1, 2].map((t) => tryRun(notes, `${label} PyTorch decoding, ${t} thread(s)`, () => torch('decode', shape, t))), (a, b) => (a.decodeTokensPerSecond ?? 0) > (b.decodeTokensPerSecond ?? 0));
      if (torchTrain) {
        train.push(`| ${label} | PyTorch ${torchTrain.threads === 1 ? '1 thread' : `${torchTrain.threads} threads`} | fp32 | ${(torchTrain.stepSeconds ?? NaN).toFixed(1)} | ` +
          `${(torchTrain.tokensPerSecond ?? NaN).toFixed(0)} | ${GB(torchTrain.peakRssBytes)} | | |`);
      }
    } else notes.push('PyTorch: not measured (python3-torch is not installed: apt-get install python3-torch)');

    // Decoding: the engine at BF16 (the file's precision) and Q8_0, llama.cpp on the same weights as GGUF, PyTorch fp32.
    const ours = (['stored', 'q8_0'] as const).map((precision) => tryChild<EngineDecode>(notes, `${label} decoding at ${precision}`, 'decode', dir, precision));
    const theirs = (['BF16', 'Q8_0'] as const).map((type) => {
      const gguf = tryChild<{ path: string }>(notes, `${label} GGUF export at ${type}`, 'export', dir, type);
      return gguf ? tryChild<LlamaCppDecode>(notes, `${label} llama.cpp decoding at ${type}`, 'llamacpp', gguf.path, '2') : null;
    });
    for (const d of ours) if (d) decodeRows.push(`| ${label} | lorasmith (${d.backend}) | ${d.precision} | ${d.decodeTokensPerSecond.toFixed(1)} | ${GB(d.peakRssBytes)} |`);
    for (const d of theirs) if (d) decodeRows.push(`| ${label} | llama.cpp (node-llama-cpp 3.21.1, ${d.threads} threads) | ${d.type} | ${d.decodeTokensPerSecond.toFixed(1)} | ${GB(d.peakRssBytes)} |`);
    if (torchDecode) decodeRows.push(`| ${label} | PyTorch (${torchDecode.threads === 1 ? '1 thread' : `${torchDecode.threads} threads`}) | fp32 | ${(torchDecode.decodeTokensPerSecond ?? NaN).toFixed(1)} | ${GB(torchDecode.peakRssBytes)} |`);

    const fastest = bestOf(engine, (a, b) => a.stepSeconds < b.stepSeconds);
    const leanest = bestOf(engine, (a, b) => a.peakRssBytes < b.peakRssBytes);
    const first = engine[0];
    if (first) notes.push(`${label}: ${first.parameters.toLocaleString('en-US')} parameters, ${first.trainable.toLocaleString('en-US')} trainable; loaded in ${first.loadSeconds.toFixed(0)} s; kernels: ${first.kernels}.`);
    const compared: string[] = [];
    if (fastest && torchTrain?.stepSeconds) compared.push(`LoRA step ${ratio(torchTrain.stepSeconds, fastest.stepSeconds)}× PyTorch's speed (recompute ${fastest.recompute ? 'on' : 'off'})`);
    if (leanest && torchTrain) compared.push(`peak RSS ${ratio(leanest.peakRssBytes, torchTrain.peakRssBytes)}× PyTorch's (recompute ${leanest.recompute ? 'on' : 'off'})`);
    const [bf16, q8] = ours;
    if (bf16 && torchDecode?.decodeTokensPerSecond) compared.push(`decoding ${ratio(bf16.decodeTokensPerSecond, torchDecode.decodeTokensPerSecond)}× PyTorch's tokens/s (BF16 against fp32)`);
    theirs.forEach((d, i) => {
      const mine = i === 0 ? bf16 : q8;
      if (d && mine) compared.push(`${ratio(mine.decodeTokensPerSecond, d.decodeTokensPerSecond)}× llama.cpp's at ${d.type}`);
    });
    if (compared.length > 0) notes.push(`${label}: ${compared.join('; ')}.`);
    if (leanest) laptop.push(`| ${label} | measured (recompute ${leanest.recompute ? 'on' : 'off'}, ${leanest.backend}) | ${GB(leanest.peakRssBytes)} | ${leanest.peakRssBytes <= LAPTOP_USABLE ? 'yes' : 'no'} |`);
  }
  if (!QUICK) {
    const need = await estimateOfShape(QWEN25_3B);
    laptop.push(`| ${QWEN25_3B.name} | estimated (recompute on, BF16 frozen store) | ${GB(need)} | ${need <= LAPTOP_USABLE ? 'yes' : 'no'} |`);
  }
  return [
    `## Real sizes: ${SHAPES.map((shape) => shape.name).join(' and ')} shapes${QUICK ? ' (QUICK: reduced shapes)' : ''}`,
    '',
    `Random weights in BF16 safetensors with the hub's config.json fields (hidden, layers, heads / kv heads, MLP, vocabulary 151,936, tied head, q/k/v bias). ` +
      `Training: LoRA r=${RUN.rank}, alpha ${RUN.alpha} on all seven linear kinds, batch ${RUN.batch} × ${RUN.seq} tokens; the engine's loadModel, injectAdapter and trainLoop (chunked loss, AdamW), a warm-up step then the median of ${RUN.steps}, ` +
      `on the backend \`lorasmith train\` picks (wasm with the native kernels and frozen store where the run's tensors fit its 4 GB heap, else cpu). ` +
      `Each measurement is a child process of its own; peak RSS is its getrusage peak; the estimate is what \`train --dry-run\` and the wizard show for the run, made before loading. ` +
      `PyTorch: bench/train_torch.py (Debian's python3-torch, float32 as PyTorch users run it on a CPU, OpenBLAS), the same shapes, LoRA and batch, the best of 1 and 2 threads.`,
    '',
    ...train,
    '',
    `Greedy decoding, ${RUN.newTokens} tokens after a ${RUN.prompt}-token prompt with the KV cache, best of 2 runs after a warm-up. llama.cpp runs the same random weights written as GGUF by the engine's exporter (BF16, and Q8_0 as llama.cpp quantizes), the engine the safetensors at the file's BF16 and at Q8_0.`,
    '',
    ...decodeRows,
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    '### What trains on a 16 GB laptop',
    '',
    `LoRA r=${RUN.rank} on all linears, batch ${RUN.batch} × ${RUN.seq}, the leaner setting measured above; "fits" means a peak within ${GB(LAPTOP_USABLE)} GB, ` +
      'what a 16 GB machine leaves after the system, a desktop and a browser. Larger models are estimated with the same estimate the table above checks.',
    '',
    '| model | peak | GB | fits |', '|---|---|---:|---|', ...laptop,
    '',
  ].join('\n');
}

function tryRun<T>(notes: string[], what: string, f: () => T): T | null {
  try {
    return f();
  } catch (error) {
    notes.push(`${what}: not measured (${(error as Error).message})`);
    return null;
  }
}

// ---- child entry ----
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv[2]) {
  const [what, path, option] = process.argv.slice(2) as [string, string, string];
  const report = what === 'train' ? await engineTrain(path, option === 'true')
    : what === 'decode' ? await engineDecode(path, option as 'stored' | 'q8_0')
      : what === 'export' ? await exportGguf(path, option as 'BF16' | 'Q8_0')
        : await llamaCppDecode(path, Number(option));
  console.log(JSON.stringify(report));
}
