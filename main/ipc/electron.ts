/**
 * Electron registration: one ipcMain.handle per contract command under the 'lorasmith:' prefix. Handlers never
 * throw across IPC (Electron would add its own text and a stack); they answer {ok, result} or {ok: false, error}
 * and the preload turns the latter into a rejected promise carrying {name, code, message}.
 */
import type { IpcMain, WebContents } from 'electron';
import { CHANNEL_PREFIX, COMMAND_NAMES, type EventName, type Events } from '../../preload/contract';
import { dispatch } from './dispatch';
import type { Handlers } from './types';

export function registerIpc(ipcMain: IpcMain, handlers: Handlers, isTrustedSender: (sender: WebContents) => boolean): () => void {
  for (const name of COMMAND_NAMES) {
    ipcMain.handle(CHANNEL_PREFIX + name, async (event, args: unknown) => {
      if (!isTrustedSender(event.sender)) {
        return { ok: false, error: { name: 'IpcError', code: 'UNAUTHORIZED', message: 'request from a window that is not the app' } };
      }
      return dispatch(handlers, name, args);
    });
  }
  return () => {
    for (const name of COMMAND_NAMES) ipcMain.removeHandler(CHANNEL_PREFIX + name);
  };
}

export function sendEvent<E extends EventName>(contents: readonly WebContents[], name: E, payload: Events[E]): void {
  for (const c of contents) if (!c.isDestroyed()) c.send(CHANNEL_PREFIX + name, payload);
}
