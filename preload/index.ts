/**
 * The bridge: exposes one typed `api` object to the renderer, never ipcRenderer itself.
 * Every name is checked against the contract's tables before it reaches main.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { CHANNEL_PREFIX, COMMAND_NAMES, EVENT_NAMES } from './contract';
import type { Api, AppError, CommandName, EventName } from './contract';

const commands: ReadonlySet<string> = new Set(COMMAND_NAMES);
const events: ReadonlySet<string> = new Set(EVENT_NAMES);

type Reply = { ok: true; result: unknown } | { ok: false; error: AppError };

const api: Api = {
  invoke(name, args) {
    if (!commands.has(name)) return Promise.reject(new Error(`unknown command: ${String(name)}`));
    // Main answers {ok, result} or {ok: false, error: {name, code, message}}; the error is rethrown as such.
    return ipcRenderer.invoke(CHANNEL_PREFIX + (name as CommandName), args).then((reply: Reply) => {
      if (reply.ok) return reply.result as never;
      throw Object.assign(new Error(reply.error.message), { name: reply.error.name, code: reply.error.code });
    });
  },
  on(name, listener) {
    if (!events.has(name)) throw new Error(`unknown event: ${String(name)}`);
    const channel = CHANNEL_PREFIX + (name as EventName);
    const wrapped = (_event: Electron.IpcRendererEvent, payload: unknown) => listener(payload as never);
    ipcRenderer.on(channel, wrapped);
    return () => ipcRenderer.removeListener(channel, wrapped);
  },
};

contextBridge.exposeInMainWorld('api', api);
