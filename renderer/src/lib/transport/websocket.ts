/**
 * The renderer's `api` in browser mode: the same commands and events as Electron's preload, carried over the
 * WebSocket of `lorasmith serve`. The token comes from the page's own address (?token=...).
 */
import type { Api, AppError, CommandName, EventName } from '../../../../preload/contract';

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: AppError };
type Push = { event: EventName; payload: unknown };

/** An error from main, with the contract's code, as the Electron transport throws it too. */
export class ApiError extends Error {
  constructor(readonly code: string, message: string, name = 'AppError') {
    super(message);
    this.name = name;
  }
}

export function websocketApi(location: { host: string; search: string; protocol: string }): Api {
  const token = new URLSearchParams(location.search).get('token') ?? '';
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners = new Map<string, Set<(payload: unknown) => void>>();
  let nextId = 1;
  let socket: Promise<WebSocket> | null = null;

  function connect(): Promise<WebSocket> {
    socket ??= new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new ApiError('DISCONNECTED', 'cannot reach the Lorasmith server; is `lorasmith serve` still running, and was the page opened with its address (with the token)?'));
      ws.onclose = () => {
        socket = null;
        for (const p of pending.values()) p.reject(new ApiError('DISCONNECTED', 'the connection to the Lorasmith server closed; reload the page to reconnect'));
        pending.clear();
      };
      ws.onmessage = (message) => {
        const data = JSON.parse(String(message.data)) as Reply | Push;
        if ('event' in data) {
          for (const l of listeners.get(data.event) ?? []) l(data.payload);
          return;
        }
        const p = pending.get(data.id);
        if (!p) return;
        pending.delete(data.id);
        if (data.ok) p.resolve(data.result);
        else p.reject(new ApiError(data.error.code, data.error.message, data.error.name));
      };
    });
    return socket;
  }

  return {
    async invoke<K extends CommandName>(name: K, args: unknown) {
      const ws = await connect();
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, name, args }));
      }) as never;
    },
    on(name, listener) {
      void connect().catch(() => undefined); // events flow once the socket is open
      const set = listeners.get(name) ?? new Set();
      listeners.set(name, set);
      const wrapped = (payload: unknown) => listener(payload as never);
      set.add(wrapped);
      return () => set.delete(wrapped);
    },
  };
}
