/**
 * ‖W0‖_F of chosen linear modules, read straight from a Hugging Face model folder (single file or shards) or a
 * GGUF file, one tensor at a time. The norm does not depend on the checkpoint's orientation ([out, in] or Conv1D's [in, out]).
 */
import { openCheckpoint } from '../io/model-checkpoint';
import { isGgufFile } from '../io/gguf';
import { openGgufModel } from '../io/gguf-model';

/** Module path -> ‖W0‖_F, for the paths found (old GPT-2 checkpoints without the 'transformer.' prefix too). */
export function baseWeightNorms(modelDir: string, paths: Iterable<string>): Map<string, number> {
  const checkpoint = isGgufFile(modelDir) ? openGgufModel(modelDir).source : openCheckpoint(modelDir);
  const norms = new Map<string, number>();
  try {
    for (const path of paths) {
      const candidates = [`${path}.weight`, `${path.split('.').slice(1).join('.')}.weight`];
      const name = candidates.find((c) => checkpoint.has(c));
      if (name === undefined) continue;
      const { data } = checkpoint.read(name);
      let sum = 0;
      for (let i = 0; i < data.length; i++) sum += (data[i] as number) ** 2;
      norms.set(path, Math.sqrt(sum));
    }
  } finally {
    checkpoint.close();
  }
  return norms;
}
