/**
 * A base model's linear modules read from its folder without loading any weight: config.json for the
 * architecture, the safetensors headers for every 2-D '.weight' that is not an embedding. Enough for the
 * preflight check of a large base in milliseconds. GPT-2 stores Conv1D weights [in, out]; the others [out, in].
 * A GGUF model file is described from its metadata.
 */
import { openCheckpoint } from '../io/model-checkpoint';
import { isGgufFile } from '../io/gguf';
import { linearSpecsOf } from '../models/inspect';
import { readModelConfig } from '../models/registry';
import type { LinearSpec } from '../models/types';
import type { BaseDescription } from './preflight';

const EMBEDDING = /(^|\.)(wte|wpe|embed_tokens|embed_positions|word_embeddings)\.weight$/;

export function describeBaseDir(modelDir: string): BaseDescription {
  const config = readModelConfig(modelDir); // throws for an unsupported model_type, naming it
  // A GGUF model: the linears the loaded model has (its config and tensors were checked when it was read).
  const sizes = { hiddenSize: config.hiddenSize, numLayers: config.numLayers };
  if (isGgufFile(modelDir)) return { modelType: config.modelType, linears: linearSpecsOf(config), ...sizes };
  const conv1d = config.modelType === 'gpt2';
  const checkpoint = openCheckpoint(modelDir);
  try {
    const hasPrefix = checkpoint.names().some((n) => n.startsWith('transformer.'));
    const linears: LinearSpec[] = [];
    for (const name of checkpoint.names()) {
      const entry = checkpoint.entry(name);
      if (!name.endsWith('.weight') || entry.shape.length !== 2 || EMBEDDING.test(name)) continue;
      const raw = name.slice(0, -'.weight'.length);
      // PEFT paths follow the module tree: GPT-2's blocks sit under 'transformer.' even where the file omits it.
      const path = conv1d && !hasPrefix && raw !== 'lm_head' ? `transformer.${raw}` : raw;
      const [rows = 0, cols = 0] = entry.shape;
      const fanInFanOut = conv1d && path !== 'lm_head';
      const layerMatch = /\.(?:h|layers)\.(\d+)\./.exec(path);
      linears.push({
        path,
        name: path.slice(path.lastIndexOf('.') + 1),
        layer: layerMatch ? Number(layerMatch[1]) : null,
        inFeatures: fanInFanOut ? rows : cols,
        outFeatures: fanInFanOut ? cols : rows,
        groups: /attn|attention/.test(path) ? ['attention'] : /mlp|feed_forward/.test(path) ? ['mlp'] : [],
        fanInFanOut,
      });
    }
    return { modelType: config.modelType, linears, ...sizes };
  } finally {
    checkpoint.close();
  }
}
