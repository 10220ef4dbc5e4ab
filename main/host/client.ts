/**
 * The main side's handle on the engine host: spawns it on first use, numbers requests by seq, routes streamed
 * events, cancels cooperatively and then hard-kills after a bounded wait. When the host dies every pending
 * request is rejected with code HOST_DIED, and the next request starts a fresh host.
 */
import { HostError, RemoteError } from './errors';
import type { HostCall, HostEvent, HostMessage, HostRequest, HostRequestType, HostResults } from './protocol';

/** A running host process or thread, as the client sees it. */
export interface HostProcess {
  post(request: HostRequest): void;
  onMessage(listener: (message: HostMessage) => void): void;
  /** Called once when the process ends, for whatever reason, with a human-readable reason. */
  onExit(listener: (reason: string) => void): void;
  kill(): void;
}

/** What a host process starts with; a change takes a restart. */
export interface HostSettings {
  /** The tfjs backend preference: 'auto' or a backend by name (the host falls back, saying why, if it fails). */
  readonly backend: string;
  /** A remote engine to train and chat on (host/remote), or null for this machine's. */
  readonly remote: { readonly address: string; readonly token: string } | null;
}

export type HostSpawner = (settings: HostSettings) => HostProcess;

export type HostState = 'starting' | 'ready' | 'busy' | 'died' | 'stopped';

export interface HostClientOptions {
  /** How long a cancelled request may take to stop on its own before the host is killed. */
  readonly cancelGraceMs?: number;
  readonly onState?: (state: HostState, detail?: string) => void;
  /** The backend preference the first host starts with (default 'auto'); see setBackend. */
  readonly backend?: string;
}

interface Pending {
  readonly type: HostRequestType;
  readonly resolve: (value: never) => void;
  readonly reject: (error: Error) => void;
  readonly onEvent?: (event: HostEvent) => void;
  cancelled: boolean;
}

export interface RequestHandle<T extends HostRequestType> {
  readonly seq: number;
  readonly result: Promise<HostResults[T]>;
}

interface Live {
  readonly process: HostProcess;
  ready: boolean;
  stopping: boolean;
  readonly backlog: HostRequest[];
}

export class HostClient {
  private live: Live | null = null;
  private nextSeq = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly cancelGraceMs: number;
  private settings: HostSettings;
  private restartWhenIdle = false;
  private changes = 0;

  constructor(
    private readonly spawn: HostSpawner,
    private readonly options: HostClientOptions = {},
  ) {
    this.cancelGraceMs = options.cancelGraceMs ?? 10_000;
    this.settings = { backend: options.backend ?? 'auto', remote: null };
  }

  get running(): boolean {
    return this.live !== null;
  }

  /** Changes whenever a host starts or stops: a report about the host (its backend) holds for one generation. */
  get generation(): number {
    return this.changes;
  }

  get backend(): string {
    return this.settings.backend;
  }

  get remote(): HostSettings['remote'] {
    return this.settings.remote;
  }

  /**
   * The backend the engine should run on. A running host is restarted to apply it: at once when idle, else as
   * soon as its last request settles (a training run is never cut short for it). The next request starts a host
   * with the new backend.
   */
  async setBackend(backend: string): Promise<void> {
    if (backend === this.settings.backend) return;
    await this.apply({ ...this.settings, backend });
  }

  /** The remote engine to use from the next request on (null: this machine's), applied as setBackend applies a backend. */
  async setRemote(remote: HostSettings['remote']): Promise<void> {
    const same = remote === null ? this.settings.remote === null : remote.address === this.settings.remote?.address && remote.token === this.settings.remote.token;
    if (same) return;
    await this.apply({ ...this.settings, remote: remote === null ? null : { address: remote.address, token: remote.token } });
  }

  private async apply(settings: HostSettings): Promise<void> {
    this.settings = settings;
    if (!this.live) return;
    if (this.pending.size === 0) await this.shutdown();
    else this.restartWhenIdle = true;
  }

  /** Sends one request; `onEvent` receives its streamed tokens or progress. */
  request<C extends HostCall>(call: C, onEvent?: (event: HostEvent) => void): RequestHandle<C['type']> {
    const seq = this.nextSeq++;
    const request = { ...call, seq } as HostRequest;
    const result = new Promise<HostResults[C['type']]>((resolve, reject) => {
      this.pending.set(seq, { type: call.type, resolve: resolve as (v: never) => void, reject, cancelled: false, ...(onEvent ? { onEvent } : {}) });
    });
    this.post(request);
    return { seq, result };
  }

  /** Convenience: send and await. */
  call<C extends HostCall>(call: C, onEvent?: (event: HostEvent) => void): Promise<HostResults[C['type']]> {
    return this.request(call, onEvent).result;
  }

  /**
   * Asks the host to stop request `seq` between steps. If it has not settled within the grace period, the host
   * is killed: the request rejects with CANCELLED and any other pending one with HOST_DIED.
   */
  async cancel(seq: number, graceMs = this.cancelGraceMs): Promise<boolean> {
    const target = this.pending.get(seq);
    if (!target || !this.live) return false;
    target.cancelled = true;
    const done = new Promise<void>((resolve) => {
      const settle = () => resolve();
      const original = { resolve: target.resolve, reject: target.reject };
      this.pending.set(seq, {
        ...target,
        resolve: ((v: never) => (original.resolve(v), settle())) as (v: never) => void,
        reject: (e) => (original.reject(e), settle()),
      });
    });
    this.post({ type: 'cancel', seq: this.nextSeq++, target: seq });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      done.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) this.kill(`request ${seq} did not stop within ${graceMs} ms of being cancelled`);
    return true;
  }

  /** Hard kill: every pending request rejects (HOST_DIED, or CANCELLED for a cancelled one). */
  kill(reason = 'killed by the app'): void {
    const live = this.live;
    if (!live) return;
    this.onDeath(live, reason);
    live.process.kill();
  }

  /** Graceful stop: running work is cancelled, the host disposes the model and exits; killed after `timeoutMs`. */
  async shutdown(timeoutMs = 10_000): Promise<void> {
    const live = this.live;
    if (!live) return;
    live.stopping = true;
    const exited = new Promise<void>((resolve) => live.process.onExit(() => resolve()));
    for (const [seq, p] of this.pending) {
      p.cancelled = true;
      this.post({ type: 'cancel', seq: this.nextSeq++, target: seq });
    }
    this.request({ type: 'shutdown' }).result.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs)))]);
    clearTimeout(timer);
    if (timedOut) this.kill(`the engine host did not stop within ${timeoutMs} ms`);
    else if (this.live === live) this.onDeath(live, 'shut down', 'stopped');
  }

  private post(request: HostRequest): void {
    const live = this.live ?? this.start();
    if (live.ready) live.process.post(request);
    else live.backlog.push(request);
  }

  private start(): Live {
    this.options.onState?.('starting');
    const process = this.spawn(this.settings);
    this.changes++;
    this.restartWhenIdle = false;
    const live: Live = { process, ready: false, stopping: false, backlog: [] };
    this.live = live;
    process.onMessage((message) => this.onMessage(live, message));
    process.onExit((reason) => {
      if (this.live === live) this.onDeath(live, live.stopping ? 'shut down' : reason, live.stopping ? 'stopped' : 'died');
    });
    return live;
  }

  private onMessage(live: Live, message: HostMessage): void {
    if (message.type === 'ready') {
      live.ready = true;
      for (const request of live.backlog.splice(0)) live.process.post(request);
      this.options.onState?.('ready');
      return;
    }
    const pending = this.pending.get(message.seq);
    if (!pending) return;
    if (message.type === 'event') {
      pending.onEvent?.(message.event);
      return;
    }
    this.pending.delete(message.seq);
    if (message.type === 'result') pending.resolve(message.result as never);
    else pending.reject(new RemoteError(message.error));
    if (this.restartWhenIdle && this.pending.size === 0) void this.shutdown();
  }

  private onDeath(live: Live, reason: string, state: HostState = 'died'): void {
    if (this.live !== live) return;
    this.live = null;
    this.changes++;
    this.options.onState?.(state, reason);
    const pending = [...this.pending.entries()];
    this.pending.clear();
    for (const [seq, p] of pending) {
      if (p.type === 'shutdown' && state === 'stopped') continue;
      p.reject(
        p.cancelled
          ? new HostError('CANCELLED', `request ${seq} (${p.type}) was cancelled and the engine host stopped: ${reason}`)
          : new HostError('HOST_DIED', `the engine host stopped while running ${p.type} (request ${seq}): ${reason}. The next request starts a fresh host.`),
      );
    }
  }
}
