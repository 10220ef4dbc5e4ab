/**
 * An in-memory IPC pair for tests: the renderer's `api` on one side, the real dispatch and handlers on the
 * other, with the same JSON round trip (structured data only) and error shape as the real transports.
 */
import type { Api, EventName, Events } from '../../preload/contract';
import { dispatch } from './dispatch';
import type { Handlers } from './types';

export class AppErrorThrown extends Error {
  constructor(readonly code: string, message: string, name: string) {
    super(message);
    this.name = name;
  }
}

export interface MemoryPair {
  readonly api: Api;
  /** Main's side: push an event to the renderer. */
  emit<E extends EventName>(name: E, payload: Events[E]): void;
}

export function memoryPair(getHandlers: () => Handlers): MemoryPair {
  const listeners = new Map<string, Set<(payload: unknown) => void>>();
  const clone = <T>(value: T): T => (value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T));
  return {
    api: {
      async invoke(name, args) {
        const outcome = await dispatch(getHandlers(), name, clone(args));
        if (!outcome.ok) throw new AppErrorThrown(outcome.error.code, outcome.error.message, outcome.error.name);
        return clone(outcome.result) as never;
      },
      on(name, listener) {
        const set = listeners.get(name) ?? new Set();
        listeners.set(name, set);
        const wrapped = (payload: unknown) => listener(payload as never);
        set.add(wrapped);
        return () => set.delete(wrapped);
      },
    },
    emit(name, payload) {
      for (const l of listeners.get(name) ?? []) l(clone(payload));
    },
  };
}
