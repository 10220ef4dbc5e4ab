/**
 * A folder that runs in Ollama, llama.cpp and LM Studio: the GGUF files of an export, its Modelfile and the commands.
 *   adapter on a GGUF base     adapter.gguf + Modelfile (FROM the base file, or its Ollama name; ADAPTER ./adapter.gguf)
 *   adapter on a folder base   adapter.gguf + base.gguf (the base written as GGUF) + Modelfile
 *   merged                     model.gguf + Modelfile (FROM ./model.gguf)
 * Everything is written into a temporary sibling folder (main/common/atomic's one naming scheme) and renamed into
 * place: a failure leaves nothing, and a crash leaves a temp the next export there sweeps.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fsyncTree, publishDir, sweepTemps, tempSibling } from '../../common/atomic';
import { isGgufFile } from '../io/gguf';
import { loadTokenizer } from '../io/tokenizer';
import type { CausalLM } from '../models/types';
import type { AdapterWeights } from './compose';
import { AdapterError } from './errors';
import { describeGgufBase, exportGgufAdapter } from './gguf-adapter-export';
import { exportGgufModel, type GgufModelType } from './gguf-model-export';
import type { AdapterSpec } from './generation';
import { modelfileText, ollamaTemplate, runCommands } from './gguf-modelfile';
import { importPeftAdapter } from './peft';
import type { ResidentAdapters } from './resident';

export interface GgufBundleSpec {
  /** The loaded base: with adapters merged for 'merged'; written as base.gguf for an adapter on a folder base. */
  readonly model: CausalLM;
  /** Where the base was loaded from: a Hugging Face folder or a GGUF file. */
  readonly base: string;
  /** The adapter to export on its own (PEFT orientation); absent for a merged export. */
  readonly adapter?: AdapterWeights;
  readonly outDir: string;
  /** Name for general.name and `ollama create`. */
  readonly name: string;
  /** Storage of the model file written (merged model, or a folder base as GGUF). */
  readonly type: GgufModelType;
  /** The base's name in Ollama (it came from Ollama's library): FROM uses it instead of the file path. */
  readonly ollamaBase?: string;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: { step: 'write'; current: number; total: number }) => void;
}

export interface GgufBundle {
  readonly outDir: string;
  readonly files: readonly string[];
  readonly modelfile: string;
  /** `ollama create … && ollama run …`, `llama-cli …` */
  readonly commands: readonly string[];
  /** Why the Modelfile has no TEMPLATE, when it has none; folded adapter scales. */
  readonly notes: readonly string[];
}

/** An Ollama model name from a display name: lowercase letters, digits, '-', '_', '.'. */
export function ollamaName(name: string): string {
  const cleaned = name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[-._]+|[-._]+$/g, '');
  return cleaned || 'lorasmith-model';
}

export async function exportGgufBundle(spec: GgufBundleSpec): Promise<GgufBundle> {
  const outDir = resolve(spec.outDir);
  if (existsSync(outDir)) throw new AdapterError('EXPORT_FAILED', `${outDir} already exists; choose a new folder for the GGUF export or remove it first`);
  const baseIsGguf = isGgufFile(spec.base);
  // Checked before anything is written: the adapter fits the base.
  const baseShape = spec.adapter ? describeGgufBase(spec.base) : null;
  const tokenizer = await loadTokenizer(spec.base);
  // FROM an Ollama model keeps that model's own TEMPLATE and stop words (Ollama's, tuned for it).
  const template = spec.ollamaBase && spec.adapter
    ? { template: null, family: null, stops: [], note: `the chat template and stop words are those of ${spec.ollamaBase} in Ollama` }
    : ollamaTemplate(tokenizer.chatTemplate, { bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken });
  // Temps a crashed export left beside it (the one naming scheme says whose they were) go first.
  sweepTemps(dirname(outDir), { recursive: false });
  const temp = tempSibling(outDir);
  mkdirSync(temp, { recursive: true });
  try {
    const files: string[] = [];
    const notes: string[] = template.note ? [`No TEMPLATE in the Modelfile: ${template.note}.`] : [];
    const progress = spec.onProgress ? { onProgress: spec.onProgress } : {};
    const signal = spec.signal ? { signal: spec.signal } : {};
    let from: string;
    let modelFile: string;
    if (spec.adapter && baseShape) {
      const written = await exportGgufAdapter(spec.adapter, baseShape, join(temp, 'adapter.gguf'), { name: spec.name, ...signal });
      files.push('adapter.gguf');
      if (written.folded > 0) notes.push(`${written.folded} module(s) have a scaling one alpha cannot express (rsLoRA, rank or alpha patterns): it is folded into their lora_b.`);
      if (baseIsGguf) {
        modelFile = resolve(spec.base);
        from = spec.ollamaBase ?? modelFile;
      } else {
        await exportGgufModel(spec.model, spec.base, join(temp, 'base.gguf'), { type: spec.type, name: `${spec.name} base`, ...signal, ...progress });
        files.push('base.gguf');
        modelFile = join(outDir, 'base.gguf');
        from = './base.gguf';
      }
    } else {
      await exportGgufModel(spec.model, spec.base, join(temp, 'model.gguf'), { type: spec.type, name: spec.name, ...signal, ...progress });
      files.push('model.gguf');
      modelFile = join(outDir, 'model.gguf');
      from = './model.gguf';
    }
    const modelfile = modelfileText({
      from,
      ...(spec.adapter ? { adapter: './adapter.gguf' } : {}),
      template,
      title: `${spec.name}: ${spec.adapter ? 'a LoRA adapter on its base' : 'a merged model'}, exported by Lorasmith`,
    });
    writeFileSync(join(temp, 'Modelfile'), modelfile);
    files.push('Modelfile');
    const commands = runCommands({ folder: outDir, name: ollamaName(spec.name), model: modelFile, ...(spec.adapter ? { adapter: join(outDir, 'adapter.gguf') } : {}) });
    if (spec.signal?.aborted) throw new AdapterError('EXPORT_FAILED', 'export cancelled; nothing was written');
    fsyncTree(temp);
    publishDir(temp, outDir);
    return { outDir, files, modelfile, commands, notes };
  } catch (error) {
    rmSync(temp, { recursive: true, force: true });
    throw error;
  }
}

export interface ResidentGgufExport {
  /** 'adapter': the one adapter as a GGUF LoRA beside its base; 'merged': every adapter merged into one model. */
  readonly kind: 'adapter' | 'merged';
  readonly adapters: readonly AdapterSpec[];
  readonly outDir: string;
  readonly name: string;
  readonly type: GgufModelType;
  readonly ollamaBase?: string;
  readonly signal?: AbortSignal;
}

/**
 * The app's GGUF export on a base that stays loaded for chat: an adapter folder is checked against the resident
 * base and exported as a GGUF LoRA; or the adapters are loaded beside the chat's, merged with their scales, the
 * model exported, then unmerged and unloaded, leaving the chat's adapters and the base as they were.
 */
export async function exportGgufFromResident(resident: ResidentAdapters<CausalLM>, base: string, request: ResidentGgufExport): Promise<GgufBundle> {
  const common = {
    model: resident.model, base, outDir: request.outDir, name: request.name, type: request.type,
    ...(request.ollamaBase ? { ollamaBase: request.ollamaBase } : {}), ...(request.signal ? { signal: request.signal } : {}),
  };
  if (request.kind === 'adapter') {
    const [only, ...rest] = request.adapters;
    if (!only || rest.length > 0) throw new AdapterError('INVALID_ARGUMENT', 'an adapter export takes exactly one adapter; merge several into a model instead');
    const model = resident.model;
    const adapter = importPeftAdapter(only.dir, { modelType: model.config.modelType, linears: [...model.linears.values()].map((l) => l.spec) });
    const scaled = only.scale === 1 ? adapter : { ...adapter, modules: new Map([...adapter.modules].map(([p, w]) => [p, { ...w, loraB: w.loraB.map((v) => v * only.scale) }])) };
    return exportGgufBundle({ ...common, adapter: scaled });
  }
  const names = request.adapters.map((_, i) => `__gguf_export_${Date.now()}_${i}`);
  const loaded: string[] = [];
  const merged: string[] = [];
  try {
    for (const [i, spec] of request.adapters.entries()) {
      const name = names[i] as string;
      resident.loadFromDir(name, spec.dir);
      loaded.push(name);
      await resident.merge(name, spec.scale);
      merged.push(name);
    }
    return await exportGgufBundle(common);
  } finally {
    for (const name of merged.reverse()) resident.unmerge(name);
    for (const name of loaded) resident.unload(name);
  }
}
