import { describe, expect, it } from 'vitest';
import type { FoundGgufModel } from '../../preload/contract';
import { AdaptersState } from '../../renderer/src/lib/state/adapters.svelte';
import { ModelsState } from '../../renderer/src/lib/state/models.svelte';
import { appError, fakeApi } from './fake-api';
import { MODEL } from './fixtures';

const QWEN: FoundGgufModel = {
  origin: 'ollama', name: 'qwen2.5:0.5b', path: '/home/u/.ollama/models/blobs/sha256-a1', bytes: 397_807_936, architecture: 'qwen2',
  quantization: 'Q4_K_M', parameterCount: 494_032_768, contextLength: 32768, hasChatTemplate: true, problem: null, note: null, modelId: null,
};
const FALCON: FoundGgufModel = { ...QWEN, name: 'falcon:7b', path: '/x/falcon', architecture: 'falcon', problem: "architecture 'falcon' is not supported" };

describe('GgufFinderState', () => {
  it('searches (a chosen folder too), and tells usable models from the others', async () => {
    const api = fakeApi({ 'models.findGguf': ({ folder }) => ({ found: [QWEN, FALCON], searched: ['/home/u/.ollama/models', ...(folder ? [folder] : [])] }) });
    const models = new ModelsState(api);
    expect(models.gguf.searched).toBeNull();
    await models.gguf.find('  /data/gguf ');
    await models.gguf.find('');
    expect(api.callsOf('models.findGguf')).toEqual([{ folder: '/data/gguf' }, {}]);
    expect(models.gguf.searched).toEqual(['/home/u/.ollama/models']);
    expect(models.gguf.usable.map((f) => f.name)).toEqual(['qwen2.5:0.5b']);
  });

  it('adds one: the model joins the list, selected, and the result says it is in the library', async () => {
    const added = { ...MODEL, id: 'mdl_q', name: 'qwen2.5:0.5b', gguf: { origin: 'ollama' as const, name: 'qwen2.5:0.5b', quantization: 'Q4_K_M', fileBytes: 1 } };
    const api = fakeApi({ 'models.findGguf': () => ({ found: [QWEN], searched: [] }), 'models.importGguf': () => added, 'models.modules': () => [] });
    const models = new ModelsState(api);
    await models.gguf.find();
    expect(await models.gguf.add(QWEN.path, ' ')).toEqual(added);
    expect(api.callsOf('models.importGguf')).toEqual([{ path: QWEN.path }]);
    expect(models.models).toEqual([added]);
    expect(models.selectedId).toBe('mdl_q');
    expect(models.gguf.found[0]?.modelId).toBe('mdl_q');
  });

  it("shows main's reason when adding fails", async () => {
    const api = fakeApi({ 'models.importGguf': () => { throw appError('ALREADY_EXISTS', "'/x' is already in the library as 'q'"); } });
    const models = new ModelsState(api);
    expect(await models.gguf.add('/x')).toBeNull();
    expect(models.gguf.error).toBe("'/x' is already in the library as 'q'");
    expect(models.gguf.adding).toBeNull();
  });
});

describe('AdaptersState GGUF export', () => {
  it('asks for a folder first, then keeps what the export wrote and how to run it', async () => {
    const result = { path: '/out', files: ['adapter.gguf', 'Modelfile'], modelfile: 'FROM x\n', commands: ['ollama create a -f /out/Modelfile && ollama run a'], notes: [] };
    const api = fakeApi({ 'adapters.exportGguf': () => result });
    const adapters = new AdaptersState(api);
    expect(await adapters.exportGguf('v1', '  ', 'adapter', 'F16')).toBeNull();
    expect(adapters.error).toMatch(/new folder/);
    expect(await adapters.exportGguf('v1', ' /out ', 'merged', 'Q8_0')).toEqual(result);
    expect(api.callsOf('adapters.exportGguf')).toEqual([{ versionId: 'v1', destination: '/out', kind: 'merged', type: 'Q8_0' }]);
    expect(adapters.lastGguf).toEqual(result);
  });
});
