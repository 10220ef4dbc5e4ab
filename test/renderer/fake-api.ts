/**
 * A fake `api` for state tests, built from Partial<handlers> (the Actual Budget pattern): commands without a
 * handler reject with NOT_IMPLEMENTED, every call is recorded, and tests push events with emit().
 */
import type { Api, AppError, CommandArgs, CommandName, CommandResult, EventName, Events } from '../../preload/contract';

export type Handlers = {
  [K in CommandName]: (args: CommandArgs<K>) => CommandResult<K> | Promise<CommandResult<K>>;
};

export interface FakeApi extends Api {
  readonly calls: { name: CommandName; args: unknown }[];
  emit<E extends EventName>(name: E, payload: Events[E]): void;
  callsOf<K extends CommandName>(name: K): CommandArgs<K>[];
}

export function appError(code: string, message: string): AppError {
  return { name: 'AppError', code, message };
}

export function fakeApi(handlers: Partial<Handlers> = {}): FakeApi {
  const listeners = new Map<EventName, Set<(payload: never) => void>>();
  const calls: { name: CommandName; args: unknown }[] = [];
  return {
    calls,
    async invoke(name, args) {
      calls.push({ name, args });
      const handler = handlers[name] as ((a: typeof args) => unknown) | undefined;
      if (!handler) throw appError('NOT_IMPLEMENTED', `the fake api has no handler for ${name}`);
      return (await handler(args)) as never;
    },
    on(name, listener) {
      const set = listeners.get(name) ?? new Set();
      set.add(listener as (payload: never) => void);
      listeners.set(name, set);
      return () => set.delete(listener as (payload: never) => void);
    },
    emit(name, payload) {
      for (const listener of listeners.get(name) ?? []) (listener as (p: typeof payload) => void)(payload);
    },
    callsOf(name) {
      return calls.filter((c) => c.name === name).map((c) => c.args) as never;
    },
  };
}

/** A deferred promise, to hold a command open while a test looks at the in-between state. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
