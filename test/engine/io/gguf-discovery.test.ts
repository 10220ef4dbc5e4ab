/** Finding GGUF models where Ollama and LM Studio keep them, and saying which can be used and why not. */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findGgufFiles, findOllamaModels } from '../../../main/engine/io/gguf-discovery';
import { kv, writeGguf } from '../../../main/engine/io/gguf-write';

const root = mkdtempSync(join(tmpdir(), 'lorasmith-discovery-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A small llama-architecture GGUF (header facts only matter here). */
async function tinyGguf(path: string, arch = 'llama', type: 'F16' | 'Q8_0' = 'Q8_0'): Promise<string> {
  mkdirSync(join(path, '..'), { recursive: true });
  await writeGguf(path, [
    kv.string('general.architecture', arch), kv.string('general.name', 'tiny'), kv.u32('general.file_type', type === 'Q8_0' ? 7 : 1),
    kv.u32(`${arch}.context_length`, 2048), kv.string('tokenizer.ggml.model', 'gpt2'), kv.strings('tokenizer.ggml.tokens', ['a', 'b']),
    kv.string('tokenizer.chat_template', '{{ messages }}'),
  ], [
    { name: 'token_embd.weight', shape: [2, 64], type, data: () => new Float32Array(128).fill(0.5) },
    { name: 'output_norm.weight', shape: [64], type: 'F32', data: () => new Float32Array(64).fill(1) },
  ]);
  return path;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

describe('Ollama', () => {
  const models = join(root, 'ollama');
  let digest: string;
  beforeAll(async () => {
    const temp = await tinyGguf(join(root, 'blob.tmp'));
    digest = sha256(temp);
    mkdirSync(join(models, 'blobs'), { recursive: true });
    renameSync(temp, join(models, 'blobs', `sha256-${digest}`));
    const manifest = (name: string, layers: object[]) => {
      const path = join(models, 'manifests', name);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', layers }));
    };
    const model = { mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest}`, size: 1 };
    manifest('registry.ollama.ai/library/tiny/latest', [model, { mediaType: 'application/vnd.ollama.image.template', digest: 'sha256:00' }]);
    manifest('registry.ollama.ai/me/tuned/v1', [model, { mediaType: 'application/vnd.ollama.image.adapter', digest: 'sha256:11' }]);
    manifest('hf.co/bartowski/gone/Q4_K_M', [{ ...model, digest: `sha256:${'e'.repeat(64)}` }]);
    manifest('registry.ollama.ai/library/broken/latest', []);
    writeFileSync(join(models, 'manifests/registry.ollama.ai/library/tiny/garbage'), '{not json');
  });

  it('lists each manifest under its Ollama name with its blob, digest and what the header says', () => {
    const found = findOllamaModels(models);
    expect(found.map((f) => f.name)).toEqual(['hf.co/bartowski/gone:Q4_K_M', 'me/tuned:v1', 'tiny:latest']);
    const tiny = found.find((f) => f.name === 'tiny:latest');
    expect(tiny?.path).toBe(join(models, 'blobs', `sha256-${digest}`));
    expect(tiny?.digest).toBe(`sha256:${digest}`);
    expect([tiny?.problem, tiny?.note, tiny?.summary?.architecture, tiny?.summary?.quantization]).toEqual([null, null, 'llama', 'Q8_0']);
    expect(found.find((f) => f.name === 'me/tuned:v1')?.note).toBe('the base model is imported without its own LoRA adapter');
    expect(found.find((f) => f.name.includes('gone'))?.problem).toMatch(/model blob .* is missing/);
  });

  it('finds nothing in a folder that is not an Ollama library', () => {
    expect(findOllamaModels(join(root, 'nowhere'))).toEqual([]);
  });
});

describe('LM Studio and any folder', () => {
  const models = join(root, 'lmstudio');
  beforeAll(async () => {
    await tinyGguf(join(models, 'Qwen/Tiny-GGUF/tiny-Q8_0.gguf'));
    await tinyGguf(join(models, 'Qwen/Tiny-GGUF/mmproj-tiny-f16.gguf'), 'llama', 'F16');
    await tinyGguf(join(models, 'tii/Falcon-GGUF/falcon.gguf'), 'falcon', 'F16');
    await tinyGguf(join(models, 'big/Big-GGUF/big-00001-of-00002.gguf'));
    await tinyGguf(join(models, 'big/Big-GGUF/big-00002-of-00002.gguf'));
    const cut = await tinyGguf(join(models, 'cut/Cut-GGUF/cut.gguf'));
    truncateSync(cut, readFileSync(cut).length - 10);
    writeFileSync(join(models, 'readme.gguf'), 'this is a text file that someone named .gguf by mistake, not a model');
  });

  it('offers what fits and names the reason for everything else', () => {
    const found = findGgufFiles(models, 'lmstudio');
    const byName = new Map(found.map((f) => [f.name, f]));
    expect([...byName.keys()]).toEqual(['big/Big-GGUF/big-00001-of-00002.gguf', 'cut/Cut-GGUF/cut.gguf', 'Qwen/Tiny-GGUF/tiny-Q8_0.gguf', 'readme.gguf', 'tii/Falcon-GGUF/falcon.gguf']);
    expect(byName.get('Qwen/Tiny-GGUF/tiny-Q8_0.gguf')?.problem).toBeNull();
    expect(byName.get('tii/Falcon-GGUF/falcon.gguf')?.problem).toMatch(/architecture 'falcon' is not supported/);
    expect(byName.get('big/Big-GGUF/big-00001-of-00002.gguf')?.problem).toMatch(/split into 2 files/);
    expect(byName.get('cut/Cut-GGUF/cut.gguf')?.problem).toMatch(/truncated/);
    expect(byName.get('readme.gguf')?.problem).toMatch(/does not start with 'GGUF'/);
  });

  it('stops at the depth asked for', () => {
    expect(findGgufFiles(models, 'folder', 1).map((f) => f.name)).toEqual(['readme.gguf']);
  });
});
