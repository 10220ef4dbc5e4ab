/**
 * The renderer's one `api`: Electron's preload bridge (window.api) when it exists, else the browser-mode
 * WebSocket of `lorasmith serve`. State modules import `api` from here and never know which carries it.
 */
import type { Api } from '../../../../preload/contract';
import { websocketApi } from './websocket';

export type { Api };
export { ApiError } from './websocket';

function chooseTransport(): Api {
  const bridged = (globalThis as { api?: Api }).api;
  if (bridged) return bridged;
  return websocketApi(globalThis.location);
}

/** 'electron' when the preload bridge is present, else 'browser'. */
export const transportKind: 'electron' | 'browser' = (globalThis as { api?: Api }).api ? 'electron' : 'browser';

export const api: Api = chooseTransport();
