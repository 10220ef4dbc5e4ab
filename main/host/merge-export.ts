/**
 * Export a merged model: each adapter's scale·(alpha/r)·B·A is added into the base weights, every weight is
 * written in the base checkpoint's own names and layout (model.safetensors) beside a copy of its config and
 * tokenizer files, and the base is unmerged again so chat is unaffected. The folder appears atomically.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { mergeIntoLayers, unmergeFromLayers } from '../engine/adapters/merge';
import { writeSafetensors, type WritableTensor } from '../engine/io/safetensors';
import { attachAdapterWeights, removeAdapter } from '../engine/lora/inject';
import { loadAdapter } from '../engine/lora/peft-io';
import type { LoadedBase } from './model-loader';

const COPIED_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
  'vocab.json', 'merges.txt', 'tokenizer.model',
];

export async function exportMerged(
  base: LoadedBase,
  modelDir: string,
  adapters: readonly { readonly dir: string; readonly scale: number }[],
  outputDir: string,
): Promise<string> {
  const names = adapters.map((_, i) => `__merge__${i}`);
  const merged: { name: string; scale: number }[] = [];
  try {
    adapters.forEach((a, i) => {
      const loaded = loadAdapter(a.dir);
      attachAdapterWeights(base.model, names[i] as string, loaded.config, loaded.modules, { activate: false });
    });
    for (const [i, a] of adapters.entries()) {
      mergeIntoLayers(base.model.linears.values(), names[i] as string, a.scale);
      merged.push({ name: names[i] as string, scale: a.scale });
    }
    const tensors = new Map<string, WritableTensor>();
    for (const [name, tensor] of base.model.namedWeights()) {
      tensors.set(name, { dtype: 'F32', shape: tensor.shape, data: (await tensor.data()) as Float32Array });
    }
    const temp = join(dirname(outputDir), `.tmp-${process.pid}-${Date.now()}`);
    mkdirSync(temp, { recursive: true });
    writeSafetensors(join(temp, 'model.safetensors'), tensors, { format: 'pt' });
    for (const file of COPIED_FILES) {
      if (existsSync(join(modelDir, file))) copyFileSync(join(modelDir, file), join(temp, file));
    }
    rmSync(outputDir, { recursive: true, force: true });
    renameSync(temp, outputDir);
    return outputDir;
  } finally {
    for (const m of merged.reverse()) unmergeFromLayers(base.model.linears.values(), m.name, m.scale);
    for (const name of names) removeAdapter(base.model, name);
  }
}
