/**
 * The preload exposes exactly one object, `api`, never ipcRenderer; every name is checked against the contract
 * before anything reaches main, channels carry the 'lorasmith:' prefix, and main's {ok: false, error} replies
 * reject with the contract's {name, code, message}.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { Api } from '../../preload/contract';

const exposed = new Map<string, unknown>();
const invoke = vi.fn();
const on = vi.fn();
vi.mock('electron', () => ({
  contextBridge: { exposeInMainWorld: (key: string, value: unknown) => exposed.set(key, value) },
  ipcRenderer: { invoke, on, removeListener: vi.fn() },
}));

let api: Api;
beforeAll(async () => {
  await import('../../preload/index');
  api = exposed.get('api') as Api;
});

describe('preload bridge', () => {
  it('exposes one api object with invoke and on only', () => {
    expect([...exposed.keys()]).toEqual(['api']);
    expect(Object.keys(api).sort()).toEqual(['invoke', 'on']);
  });

  it('refuses names outside the contract without calling main', async () => {
    await expect(api.invoke('shell.exec' as 'models.list', {})).rejects.toThrow(/unknown command/);
    expect(() => api.on('ipc.raw' as 'chat.token', () => undefined)).toThrow(/unknown event/);
    expect(invoke).not.toHaveBeenCalled();
    expect(on).not.toHaveBeenCalled();
  });

  it('prefixes channels and unwraps replies into results or {name, code, message} errors', async () => {
    invoke.mockResolvedValueOnce({ ok: true, result: [] });
    expect(await api.invoke('models.list', {})).toEqual([]);
    expect(invoke).toHaveBeenLastCalledWith('lorasmith:models.list', {});
    invoke.mockResolvedValueOnce({ ok: false, error: { name: 'IpcError', code: 'INVALID_INPUT', message: 'rank must be a positive integer, got 0' } });
    await expect(api.invoke('runs.list', {})).rejects.toMatchObject({ name: 'IpcError', code: 'INVALID_INPUT', message: 'rank must be a positive integer, got 0' });
    api.on('chat.token', () => undefined);
    expect(on).toHaveBeenLastCalledWith('lorasmith:chat.token', expect.any(Function));
  });
});
