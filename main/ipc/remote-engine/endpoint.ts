/**
 * The remote engine's end: `lorasmith serve` answers apps on other machines (through an SSH tunnel to its
 * 127.0.0.1) on the WebSocket /t/<token>/engine with the engine host it already runs for its own interface. Each
 * frame is parsed against its schema; the first must be a hello of the same Lorasmith version and protocol.
 * Content arrives by hash into remote/ (content.ts) unless its library holds it already, engine requests are turned into host requests whose paths
 * are inside remote/, and answers go back with hashes and run folders where the host named paths (the app reads
 * a run's checkpoints as they are written and its adapter at the end). A connection that closes cancels what it
 * started; its run folders go once those have stopped.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RawData, WebSocket } from 'ws';
import { z } from 'zod';
import type { HostClient } from '../../host/client';
import { toWireError } from '../../host/errors';
import { thisMachine } from '../../host/machine';
import type { HostCall, HostEvent, HostMessage, HostResults, HostRequestType, TrainJob } from '../../host/protocol';
import { RemoteEngineError } from '../../host/remote/errors';
import { REMOTE_PROTOCOL, type ContentRef, type RemoteEngineRequest, type RemoteMessage, type RemoteTrainOutcome } from '../../host/remote/protocol';
import { IpcError } from '../errors';
import { MEASURE_STOP_GRACE_MS } from '../handlers/precision';
import { RemoteContent, type RunFolders } from './content';
import { remoteMessage } from './schemas';

export interface RemoteEngineOptions {
  /** The server's data directory: what arrives is kept under its remote/ folder. */
  readonly dataDir: string;
  readonly host: Pick<HostClient, 'request' | 'call' | 'cancel'>;
  /** This server's Lorasmith version: an app of another version is refused at hello. */
  readonly version: string;
  /** Content this server's library already holds (a model imported or downloaded here), found by its hash: never sent again. */
  readonly held?: (ref: ContentRef) => string | null;
  readonly onError?: (where: string, error: unknown) => void;
}

type Result = RemoteTrainOutcome | HostResults[HostRequestType] | object;

/** The handler for each engine WebSocket the browser server admits. */
export function remoteEngineEndpoint(options: RemoteEngineOptions): (ws: WebSocket) => void {
  const content = new RemoteContent(options.dataDir);
  // Run folders belong to connections; none survives a restart of the server.
  try {
    rmSync(join(options.dataDir, 'remote', 'runs'), { recursive: true, force: true });
  } catch (error) {
    options.onError?.('removing run folders left by the last start', error);
  }
  return (ws) => new EngineConnection(ws, content, options).listen();
}

class EngineConnection {
  private greeted = false;
  private closed = false;
  /** Engine requests in flight: wire seq -> the host request's seq and type. */
  private readonly requests = new Map<number, { readonly hostSeq: number; readonly type: RemoteEngineRequest['type'] }>();
  private readonly uploads = new Set<string>();
  /** Runs of this connection: their folders may be read while they run (checkpoints) and after (output). */
  private readonly runs = new Set<string>();
  /** Finished trainings whose folders the app may still read: kept until it releases them. */
  private readonly kept = new Set<string>();

  constructor(
    private readonly ws: WebSocket,
    private readonly content: RemoteContent,
    private readonly options: RemoteEngineOptions,
  ) {}

  listen(): void {
    this.ws.on('error', (error) => this.report('engine socket', error));
    this.ws.on('message', (data, isBinary) => void this.onFrame(data, isBinary));
    this.ws.on('close', () => this.onClose());
  }

  private report(where: string, error: unknown): void {
    try {
      this.options.onError?.(where, error);
    } catch {
      // a failing logger must not take the server down
    }
  }

  private send(message: HostMessage): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(JSON.stringify(message), (error) => error && this.report('engine send', error));
  }

  private async onFrame(data: RawData, isBinary: boolean): Promise<void> {
    let seq = -1;
    try {
      if (isBinary) throw new IpcError('INVALID_INPUT', 'engine messages are JSON text frames');
      let raw: unknown;
      try {
        raw = JSON.parse(String(data));
      } catch {
        throw new IpcError('INVALID_INPUT', 'engine messages must be JSON');
      }
      const rawSeq = (raw as { seq?: unknown } | null)?.seq;
      if (typeof rawSeq === 'number' && Number.isSafeInteger(rawSeq)) seq = rawSeq;
      const parsed = remoteMessage.safeParse(raw);
      if (!parsed.success) throw new IpcError('INVALID_INPUT', `engine message: ${z.prettifyError(parsed.error).replace(/\n+/g, '; ')}`);
      const message = parsed.data as RemoteMessage;
      if (!this.greeted && message.type !== 'hello') throw new IpcError('INVALID_INPUT', `say hello first (got '${message.type}')`);
      await this.handle(message);
    } catch (error) {
      this.send({ type: 'error', seq, error: toWireError(error) });
    }
  }

  private reply(seq: number, result: Result): void {
    this.send({ type: 'result', seq, result: result as HostResults[HostRequestType] });
  }

  private async handle(message: RemoteMessage): Promise<void> {
    const { content } = this;
    switch (message.type) {
      case 'hello':
        return this.hello(message);
      case 'has':
        return this.reply(message.seq, { missing: message.refs.filter((ref) => this.find(ref) === null) });
      case 'upload': {
        const upload = content.begin(message.ref, message.files);
        this.uploads.add(upload);
        return this.reply(message.seq, { upload });
      }
      case 'chunk':
        this.ownUpload(message.upload);
        return this.reply(message.seq, { received: await content.chunk(message.upload, Buffer.from(message.data, 'base64')) });
      case 'commit':
        this.ownUpload(message.upload);
        this.uploads.delete(message.upload);
        return this.reply(message.seq, await content.commit(message.upload));
      case 'files':
        this.ownRun(message.run);
        return this.reply(message.seq, { files: content.files(message.run, message.folder) });
      case 'read':
        this.ownRun(message.run);
        return this.reply(message.seq, { data: (await content.read(message.run, message.path, message.offset, message.length)).toString('base64') });
      case 'release':
        this.ownRun(message.run);
        this.runs.delete(message.run);
        this.kept.delete(message.run);
        return this.reply(message.seq, { released: content.releaseRun(message.run) });
      case 'engine':
        return this.engine(message.seq, message.request);
    }
  }

  private hello(message: Extract<RemoteMessage, { type: 'hello' }>): void {
    const { version } = this.options;
    if (message.product !== 'lorasmith' || message.protocol !== REMOTE_PROTOCOL || message.version !== version) {
      this.send({ type: 'error', seq: message.seq, error: toWireError(new RemoteEngineError('REMOTE_VERSION_MISMATCH',
        `the remote engine runs Lorasmith ${version} (protocol ${REMOTE_PROTOCOL}) and the app is ${message.product === 'lorasmith' ? '' : `${message.product} `}${message.version} (protocol ${message.protocol}): install the same version on both machines`)) });
      this.ws.close(1008, 'version mismatch');
      return;
    }
    const { remote: _none, ...machine } = thisMachine();
    this.greeted = true;
    this.reply(message.seq, { product: 'lorasmith', version, protocol: REMOTE_PROTOCOL, machine });
  }

  private ownUpload(id: string): void {
    if (!this.uploads.has(id)) throw new IpcError('NOT_FOUND', `no upload '${id}' is open on this connection`);
  }

  private ownRun(key: string): void {
    if (!this.runs.has(key)) throw new IpcError('NOT_FOUND', `run ${key} is not one this connection can read`);
  }

  private find(ref: ContentRef): string | null {
    return this.content.resolve(ref) ?? this.options.held?.(ref) ?? null;
  }

  private path(ref: ContentRef): string {
    const path = this.find(ref);
    if (path === null) throw new RemoteEngineError('CONTENT_MISSING', `this engine does not hold ${ref.kind} ${ref.hash}; send it first`);
    return path;
  }

  /** The host request for an engine request: content resolved to folders under remote/, a run folder for jobs. */
  private toHost(request: Exclude<RemoteEngineRequest, { type: 'cancel' }>, run: RunFolders | null): HostCall {
    switch (request.type) {
      case 'status':
      case 'backend':
      case 'machine':
      case 'unloadAdapter':
      case 'setActive':
        return request;
      case 'loadBase':
      case 'modules':
        return { type: request.type, modelDir: this.path(request.model) };
      case 'loadAdapter':
        return { type: 'loadAdapter', name: request.name, dir: this.path(request.adapter) };
      case 'generate':
        return {
          type: 'generate', modelDir: this.path(request.model), messages: request.messages, sampling: request.sampling,
          adapters: request.adapters.map((a) => ({ name: a.name, dir: this.path(a.adapter), scale: a.scale })),
        };
      case 'train':
      case 'checkJob':
      case 'estimate':
      case 'measurePrecision': {
        const { job } = request;
        const dataset = this.path(job.dataset.file);
        const hostJob: TrainJob = {
          modelDir: this.path(job.model), baseModelHash: job.baseModelHash, dataset: { normalized: dataset, original: dataset, format: job.dataset.format },
          settings: job.settings, outputDir: (run as RunFolders).outputDir, checkpointDir: (run as RunFolders).checkpointDir,
          ...(job.parentAdapter ? { parentAdapterDir: this.path(job.parentAdapter) } : {}),
          ...(job.resumeFrom ? { resumeFrom: this.path(job.resumeFrom) } : {}),
        };
        return { type: request.type, job: hostJob };
      }
    }
  }

  private async engine(seq: number, request: RemoteEngineRequest): Promise<void> {
    const { host } = this.options;
    if (request.type === 'cancel') {
      const target = this.requests.get(request.target);
      // A measuring stops between two batches, which take minutes at 3B on a CPU: given as long as the app gives it.
      if (target !== undefined) void host.cancel(target.hostSeq, target.type === 'measurePrecision' ? MEASURE_STOP_GRACE_MS : undefined).catch(() => undefined);
      return this.reply(seq, { cancelled: target !== undefined });
    }
    // Answered here: the engine host need not start to say where it runs.
    if (request.type === 'machine') return this.reply(seq, thisMachine());
    const run = request.type === 'train' || request.type === 'checkJob' || request.type === 'estimate' || request.type === 'measurePrecision' ? this.content.newRun() : null;
    if (run) this.runs.add(run.key);
    try {
      const handle = host.request(this.toHost(request, run), (event) => this.send({ type: 'event', seq, event: this.named(event, run) }));
      this.requests.set(seq, { hostSeq: handle.seq, type: request.type });
      const result = await handle.result.finally(() => this.requests.delete(seq));
      this.reply(seq, this.fromHost(request, result, run));
    } finally {
      // A training's folder stays for the app to read its last checkpoint and adapter; an estimate's, check's or measuring's goes now.
      if (run && !(this.kept.has(run.key) && !this.closed)) {
        this.runs.delete(run.key);
        this.kept.delete(run.key);
        this.content.releaseRun(run.key);
      }
    }
  }

  /** The host's answer with hashes and run keys where it named paths on this machine. */
  private fromHost(request: RemoteEngineRequest, result: HostResults[HostRequestType], run: RunFolders | null): Result {
    switch (request.type) {
      case 'train': {
        const { adapterDir, lastCheckpoint: _remote, trainedOn: _here, ...outcome } = result as HostResults['train'];
        const folders = run as RunFolders;
        if (adapterDir !== null && adapterDir !== folders.outputDir) throw new Error('the run wrote its adapter outside its run folder');
        this.kept.add(folders.key);
        const adapter = adapterDir === null ? null : { run: folders.key, folder: 'output', files: this.content.files(folders.key, 'output') };
        return { ...outcome, run: folders.key, adapter };
      }
      case 'loadBase': {
        const loaded = result as HostResults['loadBase'];
        return { ...loaded, modelDir: this.content.refOf(loaded.modelDir) ?? '' };
      }
      case 'status': {
        const status = result as HostResults['status'];
        return { ...status, baseModelDir: status.baseModelDir === null ? null : this.content.refOf(status.baseModelDir) };
      }
      default:
        return result;
    }
  }

  /** Progress naming a checkpoint by run and folder ('<run>/checkpoints/checkpoint-4') instead of this machine's path. */
  private named(event: HostEvent, run: RunFolders | null): HostEvent {
    if (event.kind !== 'progress' || event.progress.checkpoint === undefined) return event;
    const { checkpoint, ...progress } = event.progress;
    const name = run ? this.content.checkpointName(run, checkpoint) : null;
    return { kind: 'progress', progress: name ? { ...progress, checkpoint: name } : progress };
  }

  private onClose(): void {
    this.closed = true;
    for (const { hostSeq } of this.requests.values()) void this.options.host.cancel(hostSeq).catch(() => undefined);
    for (const upload of this.uploads) void this.content.abort(upload).catch((error: unknown) => this.report('engine upload', error));
    // Runs still training release their folders when they stop (engine()'s finally); finished ones go now.
    for (const key of this.kept) this.content.releaseRun(key);
    this.kept.clear();
  }
}

