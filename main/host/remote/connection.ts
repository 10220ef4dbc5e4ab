/**
 * One connection to a remote engine: the address checked (loopback only: the remote's 127.0.0.1 reached through
 * an SSH tunnel), the WebSocket opened with the token, the handshake (both sides' versions compared), then
 * numbered messages with their answers and streamed events, as the host client does for a local host.
 */
import { WebSocket } from 'ws';
import { RemoteError } from '../errors';
import type { HostEvent, HostMessage } from '../protocol';
import { RemoteEngineError } from './errors';
import { REMOTE_PROTOCOL, type RemoteHello, type RemoteMessage, type RemoteResults } from './protocol';

/** The setting: where the tunnel ends on this machine, and the token the remote's `lorasmith serve` printed. */
export interface RemoteEngineAddress {
  readonly address: string;
  readonly token: string;
}

export interface RemoteTarget {
  /** ws://127.0.0.1:<port>/t/<token>/engine */
  readonly url: string;
  /** 127.0.0.1:<port>, for messages (never the token). */
  readonly shown: string;
}

const HEARTBEAT_MS = 15_000;
const TOKEN = /^[A-Za-z0-9_-]{8,200}$/;
const LOOPBACK = /^(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})$/;

/**
 * 'host:port', or the address `lorasmith serve` printed (http://127.0.0.1:<port>/t/<token>/, whose token serves
 * when none is given); only loopback names: the remote's port is forwarded here with `ssh -L`.
 */
export function remoteTarget(setting: RemoteEngineAddress): RemoteTarget {
  const raw = setting.address.trim();
  const printed = /^https?:\/\/([^/]+)(?:\/t\/([^/]+)\/?)?\/?$/.exec(raw);
  const hostPort = printed ? (printed[1] as string) : raw;
  const token = setting.token.trim() || printed?.[2] || '';
  const match = LOOPBACK.exec(hostPort);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535) {
    throw new RemoteEngineError('REMOTE_ADDRESS_INVALID', `the remote engine's address must be 127.0.0.1:<port> (the local end of an SSH tunnel such as \`ssh -N -L 8765:127.0.0.1:<port> you@gpu-box\`), got '${raw.slice(0, 200)}'`);
  }
  if (!TOKEN.test(token)) {
    throw new RemoteEngineError('REMOTE_ADDRESS_INVALID', 'the remote engine needs its token: the part after /t/ in the address `lorasmith serve` printed on the remote machine');
  }
  return { url: `ws://${hostPort}/t/${token}/engine`, shown: hostPort };
}

interface Pending {
  /** What it was, for the message when the connection is lost: 'train', 'upload'... */
  readonly what: string;
  readonly resolve: (value: never) => void;
  readonly reject: (error: Error) => void;
  readonly onEvent?: (event: HostEvent) => void;
}

/** A message as callers write it: without its seq. */
type Outgoing = RemoteMessage extends infer M ? (M extends RemoteMessage ? Omit<M, 'seq'> : never) : never;

export class RemoteConnection {
  private nextSeq = 1;
  private readonly pending = new Map<number, Pending>();
  private closedReason: string | null = null;
  private readonly closeListeners: ((reason: string) => void)[] = [];

  private constructor(
    private readonly ws: WebSocket,
    readonly target: RemoteTarget,
  ) {
    ws.on('message', (data, isBinary) => this.onMessage(isBinary ? '' : String(data)));
    // A tunnel whose network went silent closes nothing: a ping unanswered for a whole round ends the connection.
    // The verdict waits for the I/O already received (setImmediate runs after it): a pong that arrived while this
    // process was busy counts.
    let answered = true;
    ws.on('pong', () => (answered = true));
    const heartbeat = setInterval(() => {
      if (answered) {
        answered = false;
        return void ws.ping();
      }
      setImmediate(() => {
        if (!answered) ws.terminate();
      });
    }, HEARTBEAT_MS);
    heartbeat.unref();
    this.onClosed(() => clearInterval(heartbeat));
    ws.on('close', (code, reason) => this.onClose(`the connection closed (${code}${String(reason) ? `: ${String(reason)}` : ''})`));
    ws.on('error', (error) => this.onClose(error.message));
  }

  /** Opens, greets and compares versions; the remote's hello when both sides agree. */
  static async open(setting: RemoteEngineAddress, version: string): Promise<{ connection: RemoteConnection; hello: RemoteHello }> {
    const target = remoteTarget(setting);
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      // No Origin header: the remote admits engine connections from programs only, never from a browser page.
      const socket = new WebSocket(target.url, { maxPayload: 64 << 20, handshakeTimeout: 15_000 });
      socket.once('open', () => resolve(socket));
      socket.once('unexpected-response', (_request, response) => {
        socket.terminate();
        reject(response.statusCode === 403
          ? new RemoteEngineError('REMOTE_ENGINE_REFUSED', `the remote engine at ${target.shown} refused the token: enter the token its \`lorasmith serve\` printed (the part after /t/)`)
          : new RemoteEngineError('REMOTE_ENGINE_REFUSED', `${target.shown} answered ${response.statusCode} instead of a remote engine: is it a \`lorasmith serve\` of the same version?`));
      });
      socket.once('error', (error) => reject(new RemoteEngineError('REMOTE_ENGINE_UNREACHABLE',
        `nothing answers at ${target.shown} (${(error as NodeJS.ErrnoException).code ?? error.message}): start \`lorasmith serve\` on the remote machine and its tunnel (\`ssh -N -L ${target.shown.split(':').pop() ?? ''}:127.0.0.1:<port> you@gpu-box\`)`)));
    });
    const connection = new RemoteConnection(ws, target);
    try {
      const hello = await connection.call({ type: 'hello', product: 'lorasmith', version, protocol: REMOTE_PROTOCOL });
      if (hello.version !== version || hello.protocol !== REMOTE_PROTOCOL) throw versionMismatch(target.shown, hello.version, hello.protocol, version);
      return { connection, hello };
    } catch (error) {
      connection.close();
      throw error;
    }
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  onClosed(listener: (reason: string) => void): void {
    if (this.closedReason !== null) listener(this.closedReason);
    else this.closeListeners.push(listener);
  }

  /** Sends one message; resolves with its answer, `onEvent` receives what the remote streams for it. */
  request<M extends Outgoing>(message: M, onEvent?: (event: HostEvent) => void): { seq: number; result: Promise<RemoteResults[M['type']]> } {
    const seq = this.nextSeq++;
    const what = 'request' in message ? message.request.type : message.type;
    const result = new Promise<RemoteResults[M['type']]>((resolve, reject) => {
      if (this.closedReason !== null) return reject(this.lost(what));
      this.pending.set(seq, { what, resolve: resolve as (v: never) => void, reject, ...(onEvent ? { onEvent } : {}) });
      this.ws.send(JSON.stringify({ ...message, seq }), (error) => {
        if (error) this.onClose(error.message);
      });
    });
    return { seq, result };
  }

  call<M extends Outgoing>(message: M, onEvent?: (event: HostEvent) => void): Promise<RemoteResults[M['type']]> {
    return this.request(message, onEvent).result;
  }

  close(): void {
    this.onClose('closed by this app');
    this.ws.close(1000);
  }

  private lost(what: string): RemoteEngineError {
    return new RemoteEngineError('REMOTE_ENGINE_LOST', `the remote engine at ${this.target.shown} went away during ${what}: ${this.closedReason ?? 'the connection closed'}`);
  }

  private onMessage(text: string): void {
    let message: HostMessage;
    try {
      message = JSON.parse(text) as HostMessage;
    } catch {
      this.ws.close(1003, 'not JSON');
      return;
    }
    if (typeof message !== 'object' || message === null || message.type === 'ready') return;
    const pending = this.pending.get(message.seq);
    if (!pending) return;
    if (message.type === 'event') return pending.onEvent?.(message.event);
    this.pending.delete(message.seq);
    if (message.type === 'result') pending.resolve(message.result as never);
    else pending.reject(new RemoteError(message.error));
  }

  private onClose(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(this.lost(p.what));
    for (const listener of this.closeListeners.splice(0)) listener(reason);
  }
}

export function versionMismatch(shown: string, theirs: string, theirProtocol: number, ours: string): RemoteEngineError {
  return new RemoteEngineError('REMOTE_VERSION_MISMATCH',
    `the remote engine at ${shown} runs Lorasmith ${theirs} (protocol ${theirProtocol}) and this app is ${ours} (protocol ${REMOTE_PROTOCOL}): install the same version on both machines`);
}

