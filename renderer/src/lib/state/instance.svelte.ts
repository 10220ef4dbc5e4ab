/** The one RootState of the running app, on the real transport (Electron IPC or the browser-mode WebSocket). */
import { api } from '../transport';
import { RootState } from './root.svelte';

export const root = new RootState(api);
