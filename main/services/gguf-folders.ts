/**
 * Where local apps keep their GGUF models, by default: Ollama's models folder ($OLLAMA_MODELS, else ~/.ollama/models,
 * and the system service's /usr/share/ollama/.ollama/models on Linux) and LM Studio's (~/.lmstudio/models, and
 * ~/.cache/lm-studio/models of older versions). Only folders that exist are returned.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface GgufFolders {
  readonly ollama: readonly string[];
  readonly lmstudio: readonly string[];
}

export function defaultGgufFolders(env: Readonly<Record<string, string | undefined>>, home: string, platform: string): GgufFolders {
  const ollama = env.OLLAMA_MODELS
    ? [env.OLLAMA_MODELS]
    : [join(home, '.ollama', 'models'), ...(platform === 'linux' ? ['/usr/share/ollama/.ollama/models'] : [])];
  const lmstudio = [join(home, '.lmstudio', 'models'), join(home, '.cache', 'lm-studio', 'models')];
  return { ollama: ollama.filter((d) => existsSync(d)), lmstudio: lmstudio.filter((d) => existsSync(d)) };
}
