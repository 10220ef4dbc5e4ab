/** The typed contract between main and renderer. Imports nothing outside this folder. */
export * from './errors';
export * from './domain';
export * from './commands';
export * from './events';
import type { CommandArgs, CommandName, CommandResult } from './commands';
import type { EventName, Events } from './events';

/** What the renderer sees as `api`, whichever transport (Electron IPC or the browser-mode WebSocket) carries it. */
export interface Api {
  invoke<K extends CommandName>(name: K, args: CommandArgs<K>): Promise<CommandResult<K>>;
  on<E extends EventName>(name: E, listener: (payload: Events[E]) => void): () => void;
}

/** Channel prefix the preload checks every name against. */
export const CHANNEL_PREFIX = 'lorasmith:';
