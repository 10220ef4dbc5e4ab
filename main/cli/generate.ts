/**
 * `lorasmith generate <model-dir> (--prompt TEXT | --prompt-ids 1,2,3) [...]`: loads the model on the chosen
 * backend and generates through the engine's one generation loop (the app's chat runs the same, with the same
 * prompt encoding); --json prints one object with the generated ids, text, backend and speed.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError, type CliCommand, type CliIo } from './command';
import { initBackend, parseBackendPreference } from '../engine/backend/index';
import { nativeOptionsFromEnv } from '../engine/backend/native/index';
import { loadModel, readModelConfig } from '../engine/models/registry';
import { isGgufFile } from '../engine/io/gguf';
import { loadTokenizer, type ModelTokenizer } from '../engine/io/tokenizer';
import { generate } from '../engine/generate/generate';
import { encodePrompt } from '../engine/io/prompt';
import { loadAdaptersForGeneration } from '../engine/adapters/generation';
import { parseAdapterSpecs } from './merge';
import { flagOption, listOption, numberOption, parseOptions, positional, stringOption, type ParsedOptions } from './options';

export const GENERATE_USAGE = `lorasmith generate <model-dir> (--prompt TEXT | --prompt-ids 1,2,3) [--chat] [--system TEXT]
  [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S]
  [--stop STRING] [--adapter DIR[=SCALE]]... [--backend auto|tensorflow|webgpu|wasm|cpu] [--json]

  Temperature 0 (the default) is greedy. --chat wraps the prompt as a user message in the model's chat
  template (with --system as the system message), exactly as the app's chat does; BOS is added where the
  tokenizer's config asks for it. --json prints one object: ids (generated only), text,
  backend, tokensPerSecond, and more. Each --adapter (a PEFT folder, checked against the model first) applies on
  top of the base with its scale (default 1); several make a weighted mix.`;

const OPTIONS = {
  prompt: 'string', 'prompt-ids': 'string', system: 'string', 'max-new-tokens': 'string', temperature: 'string', 'top-k': 'string',
  'top-p': 'string', 'repetition-penalty': 'string', seed: 'string', stop: 'string', backend: 'string', adapter: 'list',
  chat: 'flag', json: 'flag',
} as const;

function parseIds(raw: string): number[] {
  const parts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const ids = parts.map(Number);
  if (parts.length === 0 || ids.some((id) => !Number.isInteger(id) || id < 0)) {
    throw new UsageError(`--prompt-ids must be comma-separated non-negative integers, got '${raw}'`);
  }
  return ids;
}

function promptIds(args: ParsedOptions, tokenizer: ModelTokenizer | undefined): number[] {
  const text = stringOption(args, 'prompt');
  const ids = stringOption(args, 'prompt-ids');
  if ((text === undefined) === (ids === undefined)) throw new UsageError('give exactly one of --prompt TEXT or --prompt-ids 1,2,3');
  if (ids !== undefined) {
    if (flagOption(args, 'chat')) throw new UsageError('--chat needs --prompt TEXT, not --prompt-ids');
    return parseIds(ids);
  }
  if (!tokenizer) throw new UsageError('this model folder has no tokenizer.json: use --prompt-ids');
  if (!flagOption(args, 'chat')) return encodePrompt(tokenizer, text as string);
  const system = stringOption(args, 'system');
  const messages = [...(system !== undefined ? [{ role: 'system', content: system }] : []), { role: 'user', content: text as string }];
  return encodePrompt(tokenizer, messages);
}

export function makeGenerateCommand(): CliCommand {
  return {
    name: 'generate',
    summary: 'generate text from a model folder (greedy or sampled), on a chosen backend',
    usage: GENERATE_USAGE,
    async run(argv: readonly string[], io: CliIo): Promise<number> {
      const args = parseOptions(argv, OPTIONS);
      const adapters = parseAdapterSpecs(listOption(args, 'adapter')).map((a) => ({ ...a, dir: resolve(a.dir) }));
      const dir = positional(args, 'generate', '<model-dir>', GENERATE_USAGE);
      const modelDir = resolve(dir);
      let backendPreference;
      try {
        backendPreference = parseBackendPreference(stringOption(args, 'backend') ?? 'auto');
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const stop = stringOption(args, 'stop');
      const options = {
        maxNewTokens: numberOption(args, 'max-new-tokens', 'int') ?? 64,
        temperature: numberOption(args, 'temperature', 'float') ?? 0,
        topK: numberOption(args, 'top-k', 'int'),
        topP: numberOption(args, 'top-p', 'float'),
        repetitionPenalty: numberOption(args, 'repetition-penalty', 'float'),
        seed: numberOption(args, 'seed', 'int'),
        stopStrings: stop !== undefined ? [stop] : [],
      };
      readModelConfig(modelDir); // a missing folder or config.json is named before anything else
      // A GGUF model carries its tokenizer in its metadata.
      const tokenizer = existsSync(join(modelDir, 'tokenizer.json')) || isGgufFile(modelDir) ? await loadTokenizer(modelDir) : undefined;
      const ids = promptIds(args, tokenizer);
      const backend = await initBackend(backendPreference, { native: nativeOptionsFromEnv(process.env) });
      const model = await loadModel(modelDir);
      try {
        const resident = loadAdaptersForGeneration(model, adapters);
        const result = await generate(model, ids, { ...options, tokenizer }, undefined, io.signal);
        if (flagOption(args, 'json')) {
          io.out(JSON.stringify({
            ids: result.ids,
            text: result.text ?? null,
            backend: backend.name,
            kernels: backend.matmulKernels,
            backendFallback: backend.fallback,
            selfTest: backend.selfTest,
            tokensPerSecond: result.tokensPerSecond,
            decodeTokensPerSecond: result.decodeTokensPerSecond,
            timeToFirstTokenMs: result.timeToFirstTokenMs,
            promptIds: ids,
            adapters: resident.active,
            stopReason: result.stopReason,
          }));
        } else {
          io.out(result.text ?? result.ids.join(','));
          io.err(`(${result.ids.length} tokens, ${result.tokensPerSecond.toFixed(1)} tokens/s on ${backend.name}${backend.fallback ? ` (${backend.fallback})` : ''}, stopped: ${result.stopReason})`);
        }
        return 0;
      } finally {
        model.dispose();
      }
    },
  };
}
