import { describe, expect, it } from 'vitest';
import { ModelsState } from '../../renderer/src/lib/state/models.svelte';
import type { HubDownload } from '../../preload/contract';
import { appError, deferred, fakeApi } from './fake-api';
import { MODEL } from './fixtures';

const DOWNLOAD: HubDownload = { id: 'dl-1', repoId: 'owner/tiny', revision: 'c'.repeat(40), files: ['config.json', 'model.safetensors'], totalBytes: 1000 };

describe('HubDownloadState', () => {
  it('checks the repo id before asking main', async () => {
    const api = fakeApi();
    const models = new ModelsState(api);
    for (const bad of ['', 'a/b/c', '../x', 'https://huggingface.co/x']) {
      expect(await models.hub.start(bad)).toBeNull();
      expect(models.hub.error).toMatch(/owner\/name/);
    }
    expect(api.calls).toHaveLength(0);
  });

  it('follows progress, keeps events that arrive before the answer, and adds the finished model, selected', async () => {
    const answer = deferred<HubDownload>();
    const api = fakeApi({ 'models.download': () => answer.promise, 'models.modules': () => [] });
    const models = new ModelsState(api);
    const started = models.hub.start('  owner/tiny ', ' main ');
    expect(models.hub.starting).toBe(true);
    api.emit('download.progress', { id: 'dl-1', receivedBytes: 100, totalBytes: 1000, file: 'config.json' });
    answer.resolve(DOWNLOAD);
    await started;
    expect(api.callsOf('models.download')).toEqual([{ repoId: 'owner/tiny', revision: 'main' }]);
    expect(models.hub).toMatchObject({ active: true, receivedBytes: 100, totalBytes: 1000, file: 'config.json' });
    api.emit('download.progress', { id: 'other', receivedBytes: 999, totalBytes: 999 });
    expect(models.hub.receivedBytes).toBe(100);
    api.emit('download.progress', { id: 'dl-1', receivedBytes: 1000, totalBytes: 1000, file: 'model.safetensors' });
    expect(models.hub.receivedBytes).toBe(1000);
    const model = { ...MODEL, source: { kind: 'hub' as const, ref: 'owner/tiny', revision: DOWNLOAD.revision } };
    api.emit('download.finished', { id: 'dl-1', repoId: 'owner/tiny', status: 'done', model, error: null });
    expect(models.hub).toMatchObject({ active: false, outcome: 'done', error: null });
    expect(models.models).toEqual([model]);
    expect(models.selectedId).toBe(model.id);
  });

  it('cancels, says how it ended, and shows main\'s reason for a failure', async () => {
    const api = fakeApi({
      'models.download': ({ repoId }) => {
        if (repoId === 'owner/missing') throw appError('HUB_NOT_FOUND', "the hub has no model 'owner/missing' at revision 'main'");
        return DOWNLOAD;
      },
      'models.cancelDownload': () => ({ cancelled: true }),
    });
    const models = new ModelsState(api);
    await models.hub.start('owner/missing');
    expect(models.hub.error).toMatch(/no model 'owner\/missing'/);
    await models.hub.start('owner/tiny');
    expect(await models.hub.start('owner/tiny')).toBeNull(); // one at a time
    expect(models.hub.error).toMatch(/still downloading/);
    await models.hub.cancel();
    expect(api.callsOf('models.cancelDownload')).toEqual([{ id: 'dl-1' }]);
    api.emit('download.finished', { id: 'dl-1', repoId: 'owner/tiny', status: 'cancelled', model: null, error: null });
    expect(models.hub).toMatchObject({ active: false, outcome: 'cancelled' });
    await models.hub.start('owner/tiny');
    api.emit('download.finished', { id: 'dl-1', repoId: 'owner/tiny', status: 'failed', model: null, error: '[HUB_HTTP] broke off at 10 bytes' });
    expect(models.hub).toMatchObject({ outcome: 'failed', error: '[HUB_HTTP] broke off at 10 bytes' });
    expect(models.models).toEqual([]);
  });
});
