import { describe, expect, it, vi } from 'vitest';
import { AppState } from '../../renderer/src/lib/state/app.svelte';
import { AdaptersState } from '../../renderer/src/lib/state/adapters.svelte';
import { DatasetsState } from '../../renderer/src/lib/state/datasets.svelte';
import { ModelsState } from '../../renderer/src/lib/state/models.svelte';
import { SettingsState } from '../../renderer/src/lib/state/settings.svelte';
import { appError, deferred, fakeApi } from './fake-api';
import { ADAPTER, DATASET, MODEL, llamaModules, run, version } from './fixtures';
import type { CommandResult } from '../../preload/contract';

describe('ModelsState', () => {
  it('imports a folder, selects it and loads its modules once', async () => {
    const api = fakeApi({ 'models.import': () => MODEL, 'models.modules': () => llamaModules() });
    const models = new ModelsState(api);
    const model = await models.importFolder('  /models/tiny  ');
    expect(model?.id).toBe('m1');
    expect(api.callsOf('models.import')).toEqual([{ path: '/models/tiny', mode: 'copy' }]);
    expect(models.selected?.name).toBe('tiny-llama');
    await models.loadModules('m1');
    expect(api.callsOf('models.modules')).toHaveLength(1);
    expect(models.modulesOf('m1')).toHaveLength(15);
  });

  it('says what is wrong with an import, from the form or from main', async () => {
    const api = fakeApi({ 'models.import': () => { throw appError('NOT_FOUND', 'no config.json in /tmp/x: choose a Hugging Face model folder'); } });
    const models = new ModelsState(api);
    expect(await models.importFolder('')).toBeNull();
    expect(models.error).toMatch(/Enter the path/);
    expect(api.calls).toHaveLength(0);
    await models.importFolder('/tmp/x');
    expect(models.error).toBe('no config.json in /tmp/x: choose a Hugging Face model folder');
    expect(models.importing).toBe(false);
  });
});

describe('DatasetsState', () => {
  it('previews with the chosen model and ignores a late answer for an earlier choice', async () => {
    const slow = deferred<CommandResult<'datasets.preview'>>();
    const fast: CommandResult<'datasets.preview'> = {
      records: [{ index: 0, tokenCount: 9, spans: [{ text: 'Q: hi\n', trained: false }, { text: 'A: ahoy', trained: true }] }],
      issues: [{ line: 7, field: 'messages', message: 'messages must be a non-empty array' }],
      tokenLengths: [9, 12],
    };
    const api = fakeApi({
      'datasets.list': () => [DATASET],
      'datasets.preview': ({ modelId }) => (modelId === 'old' ? slow.promise : fast),
    });
    const datasets = new DatasetsState(api);
    await datasets.refresh();
    const first = datasets.select('d1', 'old');
    await datasets.setPreviewModel('m1');
    expect(datasets.preview).toBe(fast);
    slow.resolve({ records: [], issues: [], tokenLengths: [] });
    await first;
    expect(datasets.preview).toBe(fast);
    expect(api.callsOf('datasets.preview').at(-1)).toEqual({ id: 'd1', modelId: 'm1', limit: 20 });
  });
});

describe('AdaptersState', () => {
  function api() {
    return fakeApi({
      'adapters.list': () => [ADAPTER],
      'runs.list': () => [run({ id: 'r2', adapterVersionId: 'v2', status: 'done' })],
      'adapters.versions': () => [version('v1', 1, null), version('v2', 2, 'v1'), version('v3', 3, null, { status: 'training' })],
      'runs.metrics': ({ runId }) => (runId === 'r2' ? [{ step: 1, loss: 2.5 }, { step: 2, loss: 2.1, valLoss: 2.3 }] : []),
      'adapters.exportPeft': ({ destination }) => ({ path: `${destination}/pirate-voice-v2` }),
      'adapters.deleteVersion': () => ({ deleted: true }),
    });
  }

  it('shows versions as a lineage, the producing run’s curves, and only finished versions to the chat', async () => {
    const fake = api();
    const adapters = new AdaptersState(fake);
    await adapters.refresh();
    await adapters.selectAdapter('a1');
    expect(adapters.lineage.map((n) => [n.version.id, n.depth])).toEqual([['v1', 0], ['v2', 1], ['v3', 0]]);
    await adapters.selectVersion('v2');
    expect(adapters.selectedRun?.id).toBe('r2');
    expect(adapters.metrics.map((m) => m.step)).toEqual([1, 2]);
    expect(adapters.allVersions.map((c) => c.version.id)).toEqual(['v1', 'v2']);
    expect(adapters.versionLabel('v2')).toBe('pirate-voice v2');
  });

  it('exports to a typed destination and deletes a version', async () => {
    const fake = api();
    const adapters = new AdaptersState(fake);
    await adapters.refresh();
    expect(await adapters.exportVersion('peft', 'v2', ' ')).toBeNull();
    // Said next to the export field, not with the list's errors.
    expect(adapters.exportError).toMatch(/destination/);
    expect(adapters.error).toBeNull();
    expect(await adapters.exportVersion('peft', 'v2', '/out')).toBe('/out/pirate-voice-v2');
    expect(adapters.lastExport).toBe('/out/pirate-voice-v2');
    await adapters.deleteVersion('v3');
    expect(fake.callsOf('adapters.deleteVersion')).toEqual([{ versionId: 'v3' }]);
  });

  it('an adapter with no version offers its cancelled run to resume, and deletes', async () => {
    let listed = [ADAPTER];
    const fake = fakeApi({
      'adapters.list': () => listed,
      'adapters.versions': () => [],
      'runs.list': () => [run({ id: 'r5', status: 'cancelled', checkpointStep: 40 }), run({ id: 'r6', adapterId: 'other', status: 'cancelled' })],
      'adapters.delete': () => {
        listed = [];
        return { deleted: true };
      },
    });
    const adapters = new AdaptersState(fake);
    await adapters.refresh();
    await adapters.selectAdapter('a1');
    expect(adapters.lineage).toEqual([]);
    expect(adapters.stoppedRuns.map((r) => [r.id, r.checkpointStep])).toEqual([['r5', 40]]);
    await adapters.deleteAdapter('a1');
    expect(fake.callsOf('adapters.delete')).toEqual([{ adapterId: 'a1' }]);
    expect(adapters.adapters).toEqual([]);
    expect(adapters.selectedAdapter).toBeNull();
    expect(adapters.error).toBeNull();
  });
});

describe('SettingsState', () => {
  it('resolves the system theme and rolls back a refused change', async () => {
    const api = fakeApi({
      'settings.get': () => ({ backend: 'auto', theme: 'system', defaults: {} }),
      'settings.set': () => { throw appError('INVALID_INPUT', 'backend "tpu" is not one of tensorflow, webgpu, wasm, cpu'); },
    });
    const settings = new SettingsState(api);
    await settings.load();
    expect(settings.resolvedTheme).toBe('light');
    settings.setSystemDark(true);
    expect(settings.resolvedTheme).toBe('dark');
    await settings.update({ theme: 'light' });
    expect(settings.settings.theme).toBe('system');
    expect(settings.error).toMatch(/backend "tpu"/);
  });
});

describe('AppState', () => {
  it('offers native dialogs only in the desktop app, and returns the chosen path', async () => {
    const api = fakeApi({
      'app.info': () => ({ version: '0.1.0', dataDir: '/d', mode: 'electron', backend: null }),
      'dialog.openPath': ({ purpose }) => ({ path: purpose === 'model-folder' ? '/models/tiny' : null, dialog: true }),
    });
    const app = new AppState(api);
    expect(app.hasDialogs).toBe(false);
    await app.load();
    expect(app.hasDialogs).toBe(true);
    expect(await app.choosePath('model-folder')).toBe('/models/tiny');
    expect(await app.choosePath('dataset-file')).toBeNull();
    api.emit('host.status', { state: 'busy' });
    expect(app.host?.state).toBe('busy');
  });

  it('keeps at most three notices and fades information but not errors', async () => {
    vi.useFakeTimers();
    try {
      const app = new AppState(fakeApi());
      app.notify('error', 'e1');
      app.notify('info', 'i1');
      app.notify('info', 'i2');
      app.notify('info', 'i3');
      expect(app.notices.map((n) => n.text)).toEqual(['i1', 'i2', 'i3']);
      app.notify('error', 'e2');
      vi.advanceTimersByTime(10_000);
      expect(app.notices.map((n) => n.text)).toEqual(['e2']);
    } finally {
      vi.useRealTimers();
    }
  });
});
