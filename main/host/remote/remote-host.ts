/**
 * A remote engine as the host client sees a host: another HostProcess. Training, estimates, checks, the base
 * precision's measuring and chat go to
 * the `lorasmith serve` at the other end of an SSH tunnel, with each path replaced by its content (sent first if
 * the remote lacks it); what writes into this machine's folders (exports) and what looks through them (GGUF
 * discovery) runs on a local host started when first needed. The run's adapter comes back into the output folder
 * the job named, with the machine it trained on beside it, so the training handlers commit it as they commit a
 * local one. A connection lost mid-request answers it with REMOTE_ENGINE_LOST; the next request connects anew.
 */
import { readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { storedDatasetFile } from '../../engine/train/datasets/normalize';
import type { HostProcess, HostSettings, HostSpawner } from '../client';
import { HostError, toWireError } from '../errors';
import { describeMachine } from '../machine';
import type { HostEvent, HostMessage, HostRequest, HostRequestType, HostResults, TrainJob } from '../protocol';
import { RemoteConnection, remoteTarget, type RemoteEngineAddress } from './connection';
import type { RemoteEngineRequest, RemoteHello, RemoteTrainOutcome } from './protocol';
import { ContentHashes, receiveOutput, sendContents, type LocalContent } from './transfer';

export type { RemoteEngineAddress } from './connection';

/** What runs on the remote engine; every other request runs on this machine. */
const REMOTE_TYPES: ReadonlySet<HostRequestType> = new Set<HostRequestType>([
  'status', 'backend', 'machine', 'loadBase', 'modules', 'loadAdapter', 'unloadAdapter', 'setActive', 'generate', 'train', 'checkJob', 'estimate',
  // The base loaded twice and scored where the run would train: on this machine it would load a base the remote is there to hold.
  'measurePrecision',
]);

/** The content hash the library recorded for a folder or file (a base model), so it is not hashed again here. */
export type KnownHash = (path: string) => string | null;

/** Spawns the local host, or a remote engine with a local host beside it when the settings name one. */
export function withRemoteEngine(local: HostSpawner, version: string, knownHash: KnownHash = () => null): HostSpawner {
  return (settings: HostSettings) => (settings.remote ? remoteEngineProcess(settings.remote, () => local(settings), version, knownHash) : local(settings));
}

interface Link {
  readonly connection: RemoteConnection;
  readonly hello: RemoteHello;
}

interface Running {
  /** The wire seq once the request is on its way to the remote. */
  wireSeq: number | null;
  readonly abort: AbortController;
}

function shownAddress(setting: RemoteEngineAddress): string {
  try {
    return remoteTarget(setting).shown;
  } catch {
    return setting.address;
  }
}

function describeRemote(hello: RemoteHello, shown: string): string {
  return `${describeMachine(hello.machine)} through the remote engine at ${shown}, Lorasmith ${hello.version}`;
}

export function remoteEngineProcess(setting: RemoteEngineAddress, spawnLocal: () => HostProcess, version: string, knownHash: KnownHash = () => null): HostProcess {
  const shown = shownAddress(setting); // a bad address is refused by each request (RemoteConnection.open says why)
  const hashes = new ContentHashes(knownHash);
  const running = new Map<number, Running>();
  const messageListeners: ((message: HostMessage) => void)[] = [];
  const exitListeners: ((reason: string) => void)[] = [];
  let link: Promise<Link> | null = null;
  let local: { process: HostProcess; ready: boolean; backlog: HostRequest[] } | null = null;
  let ended = false;
  let stopping = false;

  const deliver = (message: HostMessage) => {
    for (const listener of messageListeners) listener(message);
  };
  const end = (reason: string) => {
    if (ended) return;
    ended = true;
    for (const listener of exitListeners.splice(0)) listener(reason);
  };

  function connect(): Promise<Link> {
    if (!link) {
      const opening = RemoteConnection.open(setting, version);
      link = opening;
      opening.then(({ connection }) => connection.onClosed(() => {
        if (link === opening) link = null;
      }), () => {
        if (link === opening) link = null;
      });
    }
    return link;
  }

  function localProcess(): NonNullable<typeof local> {
    if (local) return local;
    const started = { process: spawnLocal(), ready: false, backlog: [] as HostRequest[] };
    local = started;
    started.process.onMessage((message) => {
      if (message.type !== 'ready') return deliver(message);
      started.ready = true;
      for (const request of started.backlog.splice(0)) started.process.post(request);
    });
    started.process.onExit((reason) => {
      if (local === started) local = null;
      end(stopping ? 'shut down' : `the local engine host stopped: ${reason}`);
    });
    return started;
  }

  function postLocal(request: HostRequest): void {
    const target = localProcess();
    if (target.ready) target.process.post(request);
    else target.backlog.push(request);
  }

  /** The remote form of a request: paths become content, sent first where the remote lacks it. */
  async function toRemote(request: HostRequest, connection: RemoteConnection, signal: AbortSignal): Promise<RemoteEngineRequest> {
    const send = async (contents: LocalContent[]) => sendContents(connection, contents, signal);
    switch (request.type) {
      case 'status':
      case 'backend':
      case 'machine':
        return { type: request.type };
      case 'unloadAdapter':
        return { type: 'unloadAdapter', name: request.name };
      case 'setActive':
        return { type: 'setActive', adapters: request.adapters };
      case 'loadBase':
      case 'modules': {
        const model = hashes.ref(request.modelDir);
        await send([model]);
        return { type: request.type, model: model.ref };
      }
      case 'loadAdapter': {
        const adapter = hashes.ref(request.dir);
        await send([adapter]);
        return { type: 'loadAdapter', name: request.name, adapter: adapter.ref };
      }
      case 'generate': {
        const model = hashes.ref(request.modelDir);
        const adapters = request.adapters.map((a) => ({ ...a, content: hashes.ref(a.dir) }));
        await send([model, ...adapters.map((a) => a.content)]);
        return {
          type: 'generate', model: model.ref, messages: request.messages, sampling: request.sampling,
          adapters: adapters.map((a) => ({ name: a.name, adapter: a.content.ref, scale: a.scale })),
        };
      }
      case 'train':
      case 'checkJob':
      case 'estimate':
      case 'measurePrecision':
        return { type: request.type, job: await remoteJob(request.job, send) };
      default:
        throw new HostError('UNKNOWN_REQUEST', `request type '${request.type}' does not run on a remote engine`);
    }
  }

  async function remoteJob(job: TrainJob, send: (contents: LocalContent[]) => Promise<void>) {
    const model = hashes.ref(job.modelDir, job.baseModelHash);
    const dataset = hashes.ref(storedDatasetFile(job.dataset));
    const parent = job.parentAdapterDir ? hashes.ref(job.parentAdapterDir) : null;
    const resume = job.resumeFrom ? hashes.ref(job.resumeFrom) : null;
    await send([model, dataset, ...(parent ? [parent] : []), ...(resume ? [resume] : [])]);
    return {
      model: model.ref, baseModelHash: job.baseModelHash, dataset: { file: dataset.ref, format: job.dataset.format }, settings: job.settings,
      ...(parent ? { parentAdapter: parent.ref } : {}), ...(resume ? { resumeFrom: resume.ref } : {}),
    };
  }

  /** The remote's answer in this machine's terms: the adapter fetched into the job's output folder, paths restored. */
  async function fromRemote(request: HostRequest, result: unknown, current: Link): Promise<HostResults[HostRequestType]> {
    switch (request.type) {
      case 'train': {
        const outcome = result as RemoteTrainOutcome;
        const { adapter, run, ...rest } = outcome;
        if (adapter) await receiveOutput(current.connection, adapter, request.job.outputDir);
        void current.connection.call({ type: 'release', run }).catch(() => undefined);
        const trainedOn = {
          description: describeRemote(current.hello, shown), machine: current.hello.machine,
          engine: { name: 'lorasmith' as const, version: current.hello.version }, address: shown,
        };
        return { ...rest, adapterDir: adapter ? request.job.outputDir : null, lastCheckpoint: null, trainedOn };
      }
      case 'loadBase':
        return { ...(result as HostResults['loadBase']), modelDir: request.modelDir };
      case 'status': {
        const status = result as HostResults['status'];
        return { ...status, baseModelDir: status.baseModelDir === null ? null : hashes.pathOf(status.baseModelDir) };
      }
      case 'machine':
        return { ...(result as HostResults['machine']), remote: { address: shown, version: current.hello.version } };
      default:
        return result as HostResults[HostRequestType];
    }
  }

  /**
   * A progress event naming a checkpoint on the remote: the checkpoint is copied into the job's checkpoint folder
   * and the event names it there (the run resumes from it, here or on the remote, if the remote goes away). A
   * checkpoint that cannot be copied is not named (the run goes on).
   */
  async function checkpointHere(request: HostRequest, event: HostEvent, connection: RemoteConnection): Promise<HostEvent> {
    if (request.type !== 'train' || event.kind !== 'progress' || event.progress.checkpoint === undefined) return event;
    const { checkpoint: named, ...progress } = event.progress;
    const match = /^([0-9a-f]{16})\/(checkpoints\/(checkpoint-\d+))$/.exec(named);
    if (!match) return { kind: 'progress', progress };
    const [, run = '', folder = '', name = ''] = match;
    const dest = join(request.job.checkpointDir, name);
    try {
      const { files } = await connection.call({ type: 'files', run, folder });
      await receiveOutput(connection, { run, folder, files }, dest);
    } catch {
      return { kind: 'progress', progress };
    }
    return { kind: 'progress', progress: { ...progress, checkpoint: dest } };
  }

  /** After the event naming `kept` went on (the library records it then): the copies before it go. */
  function dropOlderCheckpoints(kept: string): void {
    const dir = dirname(kept);
    for (const name of readdirSync(dir)) {
      if (/^checkpoint-\d+$/.test(name) && name !== basename(kept)) rmSync(join(dir, name), { recursive: true, force: true });
    }
  }

  async function runRemote(request: HostRequest, entry: Running): Promise<void> {
    try {
      const current = await connect();
      const wire = await toRemote(request, current.connection, entry.abort.signal);
      entry.abort.signal.throwIfAborted();
      // Events in the order they came; a checkpoint is fetched before its event goes on (see checkpointHere).
      let events: Promise<void> = Promise.resolve();
      const sent = current.connection.request({ type: 'engine', request: wire }, (event) => {
        events = events.then(async () => {
          const here = await checkpointHere(request, event, current.connection);
          deliver({ type: 'event', seq: request.seq, event: here });
          if (here.kind === 'progress' && here.progress.checkpoint) dropOlderCheckpoints(here.progress.checkpoint);
        });
      });
      entry.wireSeq = sent.seq;
      const answer = await sent.result;
      await events;
      const result = await fromRemote(request, answer, current);
      deliver({ type: 'result', seq: request.seq, result });
    } catch (error) {
      const aborted = entry.abort.signal.aborted && (error as { code?: unknown }).code !== 'REMOTE_ENGINE_LOST';
      deliver({ type: 'error', seq: request.seq, error: toWireError(aborted ? new HostError('CANCELLED', `request ${request.seq} (${request.type}) was cancelled`) : error) });
    } finally {
      running.delete(request.seq);
    }
  }

  function cancel(request: Extract<HostRequest, { type: 'cancel' }>): void {
    const entry = running.get(request.target);
    if (!entry) {
      if (local) return postLocal(request); // a local request's cancel: the local host answers
      return deliver({ type: 'result', seq: request.seq, result: { cancelled: false } });
    }
    entry.abort.abort();
    if (entry.wireSeq !== null && link) {
      void link.then(({ connection }) => connection.call({ type: 'engine', request: { type: 'cancel', target: entry.wireSeq ?? 0 } })).catch(() => undefined);
    }
    deliver({ type: 'result', seq: request.seq, result: { cancelled: true } });
  }

  function shutdown(request: HostRequest): void {
    stopping = true;
    for (const entry of running.values()) entry.abort.abort();
    void link?.then(({ connection }) => connection.close(), () => undefined);
    if (local) return postLocal(request); // the local host answers, exits, and that ends this process
    deliver({ type: 'result', seq: request.seq, result: { ok: true } });
    end('shut down');
  }

  queueMicrotask(() => deliver({ type: 'ready', pid: process.pid }));
  return {
    post(request) {
      if (request.type === 'cancel') return cancel(request);
      if (request.type === 'shutdown') return shutdown(request);
      if (!REMOTE_TYPES.has(request.type)) return postLocal(request);
      const entry: Running = { wireSeq: null, abort: new AbortController() };
      running.set(request.seq, entry);
      void runRemote(request, entry);
    },
    onMessage: (listener) => void messageListeners.push(listener),
    onExit: (listener) => void exitListeners.push(listener),
    kill() {
      for (const entry of running.values()) entry.abort.abort();
      void link?.then(({ connection }) => connection.close(), () => undefined);
      local?.process.kill();
      end('killed by the app');
    },
  };
}
