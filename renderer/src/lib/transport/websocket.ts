/**
 * The renderer's `api` in browser mode: the same commands and events as Electron's preload, carried over the
 * WebSocket of `lorasmith serve`. The page lives under its token (/t/<token>/) and the socket beside it
 * (/t/<token>/ws), so the token travels in the address only: no cookie, nothing another local service could receive.
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

/** Close codes the server uses for a message it cannot take (RFC 6455 §7.4.1). */
const CLOSE_REASONS: Readonly<Record<number, string>> = {
  1007: 'the server refused a message that was not valid UTF-8',
  1009: 'the message was too large for the server (16 MiB at most)',
};

/** The socket's address: `ws` beside the page (whose path carries the token), on the page's own origin. */
export function socketUrl(pageHref: string): string {
  const url = new URL('ws', pageHref);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  return url.href;
}

export function websocketApi(location: { href: string }): Api {
  const url = socketUrl(location.href);
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners = new Map<string, Set<(payload: unknown) => void>>();
  let nextId = 1;
  let socket: Promise<WebSocket> | null = null;

  function connect(): Promise<WebSocket> {
    socket ??= new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new ApiError('DISCONNECTED', 'cannot reach the Lorasmith server; is `lorasmith serve` still running, and was the page opened with its address (with the token)?'));
      ws.onclose = (event) => {
        socket = null;
        const why = CLOSE_REASONS[event.code];
        const error = why
          ? new ApiError('MESSAGE_REFUSED', `${why}; the connection reopens with the next command`)
          : new ApiError('DISCONNECTED', 'the connection to the Lorasmith server closed; reload the page to reconnect');
        for (const p of pending.values()) p.reject(error);
        pending.clear();
        // The page can no longer reach the engine: it hears so as the host's status, and shows it as a banner.
        if (!why) {
          const detail = 'The connection to the Lorasmith server closed: it stopped, or this machine slept. Start `lorasmith serve` (or `npm start`) again and open the address it prints.';
          for (const l of listeners.get('host.status') ?? []) l({ state: 'died', detail });
        }
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
