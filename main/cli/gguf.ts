/**
 * `lorasmith gguf`: GGUF out for Ollama, llama.cpp and LM Studio, and a look inside GGUF files.
 *   adapter <adapter-dir> --base <model> --out DIR    the adapter as a GGUF LoRA + Modelfile (+ the base as GGUF
 *                                                     when the base is a Hugging Face folder)
 *   merged <model> --adapter DIR[=SCALE]... --out DIR the adapters merged, written as one GGUF model + Modelfile
 *   inspect <file.gguf>                               architecture, quantization, tensors, tokenizer, template
 *   find [--folder DIR]...                            the GGUF models Ollama and LM Studio hold (and DIR), by name
 * A <model> is a Hugging Face folder or a GGUF file (one Ollama or LM Studio holds, say, used where it lies).
 */
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { UsageError, type CliCommand, type CliIo } from './command';
import { exportGgufBundle, type GgufBundle } from '../engine/adapters/gguf-bundle';
import type { GgufModelType } from '../engine/adapters/gguf-model-export';
import { importPeftAdapter } from '../engine/adapters/peft';
import { ResidentAdapters } from '../engine/adapters/resident';
import { describeGguf } from '../engine/io/gguf-describe';
import { findGgufFiles, findOllamaModels, type FoundGguf } from '../engine/io/gguf-discovery';
import { defaultGgufFolders } from '../services/gguf-folders';
import type { CausalLM } from '../engine/models/types';
import { type BaseLoader, parseAdapterSpecs } from './merge';
import { flagOption, listOption, parseOptions, positional, runSubcommand, stringOption } from './options';

export const GGUF_USAGE = `lorasmith gguf <adapter|merged|inspect|find> ...
  lorasmith gguf adapter <adapter-dir> --base <model> --out DIR [--name NAME] [--type f16|bf16|q8_0] [--ollama-base NAME]
      The PEFT adapter as a GGUF LoRA (adapter.gguf) with an Ollama Modelfile. On a GGUF base the Modelfile points
      at it (or at --ollama-base, its name in Ollama); on a Hugging Face folder the base is written too, as
      base.gguf in --type (default f16). Checked against the base before anything is written.
  lorasmith gguf merged <model> --adapter DIR[=SCALE]... --out DIR [--name NAME] [--type f16|bf16|q8_0]
      The adapters merged into the base and written as model.gguf (default f16) with a Modelfile.
  lorasmith gguf inspect <file.gguf> [--json]
      What a GGUF file holds: architecture, size, quantization, tokenizer, chat template, tensor types.
  lorasmith gguf find [--folder DIR]... [--json]
      The GGUF models already on this computer: Ollama's ($OLLAMA_MODELS, else ~/.ollama/models) by their Ollama
      names, LM Studio's (~/.lmstudio/models) and those under each --folder, with their paths, and why one cannot
      be used. Give a path as the <model> of train, generate or gguf adapter: it is read where it lies, never copied.

  <model> is a Hugging Face folder or a GGUF file. --out must not exist yet. Prints the commands that run the
  result in Ollama and llama.cpp.`;

function parseType(text: string | undefined): GgufModelType {
  if (text === undefined) return 'F16';
  const type = ({ f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0', f32: 'F32' } as const)[text.toLowerCase() as 'f16'];
  if (!type) throw new UsageError(`--type must be f16, bf16, q8_0 or f32, got '${text}'`);
  return type;
}

function report(io: CliIo, bundle: GgufBundle): void {
  io.out(`wrote ${bundle.outDir} (${bundle.files.join(', ')})`);
  for (const note of bundle.notes) io.out(`note: ${note}`);
  io.out('run it:');
  for (const command of bundle.commands) io.out(`  ${command}`);
}

async function withModel<T>(load: BaseLoader, path: string, backend: string, fn: (model: CausalLM) => Promise<T>): Promise<T> {
  const model = await load(path, backend);
  try {
    return await fn(model);
  } finally {
    model.dispose();
  }
}

async function adapter(argv: readonly string[], io: CliIo, load: BaseLoader): Promise<number> {
  const args = parseOptions(argv, { base: 'string', out: 'string', name: 'string', type: 'string', 'ollama-base': 'string', backend: 'string' });
  const adapterDir = positional(args, 'gguf adapter', '<adapter-dir>', GGUF_USAGE);
  const base = stringOption(args, 'base');
  const out = stringOption(args, 'out');
  if (!base) throw new UsageError('--base <model> is required: the folder or GGUF file the adapter was trained on');
  if (!out) throw new UsageError('--out DIR is required');
  const weights = importPeftAdapter(resolve(adapterDir));
  const ollamaBase = stringOption(args, 'ollama-base');
  const bundle = await withModel(load, resolve(base), stringOption(args, 'backend') ?? 'auto', (model) =>
    exportGgufBundle({
      model, base: resolve(base), adapter: weights, outDir: resolve(out), name: stringOption(args, 'name') ?? 'lorasmith-adapter',
      type: parseType(stringOption(args, 'type')), ...(ollamaBase ? { ollamaBase } : {}), signal: io.signal,
    }));
  report(io, bundle);
  return 0;
}

async function merged(argv: readonly string[], io: CliIo, load: BaseLoader): Promise<number> {
  const args = parseOptions(argv, { adapter: 'list', out: 'string', name: 'string', type: 'string', backend: 'string' });
  const adapterArgs = listOption(args, 'adapter');
  const modelPath = positional(args, 'gguf merged', '<model>', GGUF_USAGE);
  if (adapterArgs.length === 0) throw new UsageError('at least one --adapter DIR[=SCALE] is required');
  const out = stringOption(args, 'out');
  if (!out) throw new UsageError('--out DIR is required');
  const specs = parseAdapterSpecs(adapterArgs);
  const base = resolve(modelPath);
  const bundle = await withModel(load, base, stringOption(args, 'backend') ?? 'auto', async (model) => {
    const resident = new ResidentAdapters(model);
    for (const [i, spec] of specs.entries()) {
      resident.loadFromDir(`merge-${i}`, resolve(spec.dir));
      await resident.merge(`merge-${i}`, spec.scale);
    }
    return exportGgufBundle({ model, base, outDir: resolve(out), name: stringOption(args, 'name') ?? 'lorasmith-model', type: parseType(stringOption(args, 'type')), signal: io.signal });
  });
  report(io, bundle);
  return 0;
}

function inspect(argv: readonly string[], io: CliIo): number {
  const args = parseOptions(argv, { json: 'flag' });
  const file = positional(args, 'gguf inspect', '<file.gguf>', GGUF_USAGE);
  const summary = describeGguf(resolve(file));
  if (flagOption(args, 'json')) {
    io.out(JSON.stringify(summary));
    return 0;
  }
  io.out(`${summary.path}: ${summary.kind} GGUF v${summary.version}, ${summary.architecture}${summary.name ? ` '${summary.name}'` : ''}`);
  io.out(`  ${summary.parameterCount.toLocaleString('en')} parameters in ${summary.tensorCount} tensors, ${(summary.fileBytes / 1e6).toFixed(1)} MB, ${summary.quantization ?? 'unknown quantization'}`);
  io.out(`  tensor types: ${Object.entries(summary.tensorTypes).map(([t, n]) => `${t} ×${n}`).join(', ')}`);
  if (summary.tokenizer) io.out(`  tokenizer: ${summary.tokenizer.model}${summary.tokenizer.pre ? ` (${summary.tokenizer.pre})` : ''}, ${summary.tokenizer.tokens} tokens`);
  io.out(`  chat template: ${summary.hasChatTemplate ? 'yes' : 'no'}`);
  if (summary.unreadable.length > 0) io.out(`  not readable here: ${summary.unreadable.join('; ')}`);
  return 0;
}

/** One found model in a line: where from, its name, what it is, its path; or why it cannot be used here. */
function foundLine(f: FoundGguf): string {
  const size = f.bytes >= 1e9 ? `${(f.bytes / 1e9).toFixed(2)} GB` : `${(f.bytes / 1e6).toFixed(1)} MB`;
  const what = f.summary
    ? `${f.summary.architecture}, ${f.summary.quantization ?? 'unknown quantization'}, ${f.summary.parameterCount.toLocaleString('en')} parameters, ${size}`
    : size;
  const lines = [`${f.origin.padEnd(8)} ${f.name} (${what})`, `         ${f.path}`];
  if (f.problem !== null) lines.push(`         cannot be used here: ${f.problem}`);
  if (f.note !== null) lines.push(`         note: ${f.note}`);
  return lines.join('\n');
}

function find(argv: readonly string[], io: CliIo): number {
  const args = parseOptions(argv, { folder: 'list', json: 'flag' });
  if (args.positionals.length > 0) throw new UsageError(`gguf find takes no <path> (got '${args.positionals[0]}'); give a folder with --folder DIR\nUsage: ${GGUF_USAGE}`);
  const defaults = defaultGgufFolders(process.env, homedir(), process.platform);
  const folders = listOption(args, 'folder').map((dir) => resolve(dir));
  const found = [
    ...defaults.ollama.flatMap((dir) => findOllamaModels(dir)),
    ...defaults.lmstudio.flatMap((dir) => findGgufFiles(dir, 'lmstudio')),
    ...folders.flatMap((dir) => findGgufFiles(dir, 'folder')),
  ];
  const searched = [...defaults.ollama, ...defaults.lmstudio, ...folders];
  if (flagOption(args, 'json')) {
    io.out(JSON.stringify({ searched, found: found.map(({ summary, ...f }) => ({ ...f, architecture: summary?.architecture ?? null, quantization: summary?.quantization ?? null, parameterCount: summary?.parameterCount ?? null })) }));
    return 0;
  }
  if (searched.length === 0) {
    io.out('no Ollama or LM Studio models folder here (~/.ollama/models, $OLLAMA_MODELS, ~/.lmstudio/models); give one with --folder DIR');
    return 0;
  }
  io.out(`searched ${searched.join(', ')}: ${found.length} GGUF model(s)`);
  for (const f of found) io.out(foundLine(f));
  if (found.some((f) => f.problem === null)) io.out('use a path above as the <model> of lorasmith train, generate or gguf adapter (read where it lies)');
  return 0;
}

export function makeGgufCommand(load: BaseLoader): CliCommand {
  return {
    name: 'gguf',
    summary: 'export adapters or merged models as GGUF for Ollama / llama.cpp, inspect a GGUF file, or find those Ollama and LM Studio hold',
    usage: GGUF_USAGE,
    async run(argv: readonly string[], io: CliIo): Promise<number> {
      return runSubcommand('gguf', GGUF_USAGE, argv, {
        adapter: (rest) => adapter(rest, io, load),
        merged: (rest) => merged(rest, io, load),
        inspect: (rest) => inspect(rest, io),
        find: (rest) => find(rest, io),
      });
    },
  };
}
