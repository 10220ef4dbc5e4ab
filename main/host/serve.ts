/**
 * The host's request loop, behind both the worker_threads entry and the utilityProcess entry: one request
 * at a time touches the engine (a queue), cancel / status / shutdown answer at once. Each running request
 * has an AbortController that `cancel` fires; the engine stops between steps or tokens.
 * While a run trains, the chat's requests (load the same base, adapters, active set, generate) do not wait for
 * the run's end: they are served between two training steps, so an answer waits at most one step.
 */
import { HostError, toWireError } from './errors';
import { thisMachine } from './machine';
import type { HostEngine } from './engine';
import type { HostEvent, HostRequest, HostRequestType, HostResults, HostTransport } from './protocol';
import { isHostRequest } from './protocol';

export interface ServeOptions {
  /** Called after `shutdown` has been answered: the entry exits its process here. */
  readonly onShutdown?: () => void;
}

interface Running {
  readonly type: HostRequestType;
  readonly controller: AbortController;
}

/** What the chat sends: served between training steps while a run trains, instead of after it. */
const BETWEEN_STEPS: ReadonlySet<HostRequestType> = new Set(['loadBase', 'modules', 'loadAdapter', 'unloadAdapter', 'setActive', 'generate']);

export function serve(transport: HostTransport, engine: HostEngine, options: ServeOptions = {}): void {
  const running = new Map<number, Running>();
  let queue: Promise<void> = Promise.resolve();
  /** Requests waiting for the next pause between two training steps, in arrival order. */
  const betweenSteps: HostRequest[] = [];

  const reply = (seq: number, result: HostResults[HostRequestType]) => transport.send({ type: 'result', seq, result });
  const fail = (seq: number, error: unknown) => transport.send({ type: 'error', seq, error: toWireError(error) });
  const emit = (seq: number, event: HostEvent) => {
    transport.send({ type: 'event', seq, event });
    transport.poll?.(); // a cancel sent meanwhile takes effect before the next step
  };

  const busyWith = (type: HostRequestType) => [...running.values()].some((r) => r.type === type);

  async function execute(request: HostRequest, signal: AbortSignal): Promise<HostResults[HostRequestType]> {
    switch (request.type) {
      case 'loadBase':
        return engine.loadBase(request.modelDir);
      case 'modules':
        return engine.modules(request.modelDir);
      case 'loadAdapter':
        return engine.loadAdapter(request.name, request.dir);
      case 'unloadAdapter':
        return engine.unloadAdapter(request.name);
      case 'setActive':
        return engine.setActive(request.adapters);
      case 'generate':
        return engine.generate(request.modelDir, request.adapters, request.messages, request.sampling, signal, (text, tokenId) =>
          emit(request.seq, { kind: 'token', text, tokenId }),
        );
      case 'train':
        try {
          return await engine.train(request.job, signal, (progress) => emit(request.seq, { kind: 'progress', progress }), serveWaiting);
        } finally {
          await serveWaiting(); // what came after the last step is answered before anything queued behind the run
        }
      case 'checkJob':
        return engine.checkJob(request.job);
      case 'estimate':
        return engine.estimate(request.job);
      case 'measurePrecision':
        return engine.measurePrecision(request.job, signal, (progress) => emit(request.seq, { kind: 'precision', progress }));
      case 'exportMerged':
        return engine.exportMerged(request.modelDir, request.adapters, request.outputDir);
      case 'exportGguf':
        return engine.exportGguf(request, signal);
      case 'exportRun':
        return engine.exportRun(request.job, request.hubId, request.library);
      default:
        throw new HostError('UNKNOWN_REQUEST', `request type '${request.type}' is not served by the queue`);
    }
  }

  async function run(request: HostRequest, controller: AbortController): Promise<void> {
    try {
      if (controller.signal.aborted) throw new HostError('CANCELLED', `request ${request.seq} (${request.type}) was cancelled before it started`);
      reply(request.seq, await execute(request, controller.signal));
    } catch (error) {
      fail(request.seq, error);
    } finally {
      running.delete(request.seq);
    }
  }

  /** Called by the training loop between two steps: serves the chat's requests that came meanwhile. */
  async function serveWaiting(): Promise<void> {
    transport.poll?.();
    for (let request = betweenSteps.shift(); request; request = betweenSteps.shift()) {
      const entry = running.get(request.seq);
      if (entry) await run(request, entry.controller);
    }
  }

  function enqueue(request: HostRequest): void {
    const controller = new AbortController();
    running.set(request.seq, { type: request.type, controller });
    if (BETWEEN_STEPS.has(request.type) && busyWith('train')) {
      betweenSteps.push(request);
      return;
    }
    queue = queue.then(() => run(request, controller));
  }

  function handle(request: HostRequest): void {
    switch (request.type) {
      case 'status':
        return reply(request.seq, { ...engine.status(), busy: [...running.values()].map((r) => r.type) });
      case 'backend':
        // Not queued: Settings asks while a training may hold the queue (the backend is long initialised then).
        engine.backend().then((info) => reply(request.seq, info), (error: unknown) => fail(request.seq, error));
        return;
      case 'machine':
        return reply(request.seq, thisMachine());
      case 'findGguf':
        // Not queued: looking through folders while a training holds the queue (headers only, no weights).
        return reply(request.seq, engine.findGguf(request));
      // Not queued either: the adapter tools read PEFT folders (milliseconds to seconds), never the resident model.
      case 'analyzeAdapter':
        return reply(request.seq, engine.analyzeAdapter(request));
      case 'reduceAdapter':
        return reply(request.seq, engine.reduceAdapter(request));
      case 'proposeTraining':
        return reply(request.seq, engine.proposeTraining(request));
      case 'cancel': {
        const target = running.get(request.target);
        target?.controller.abort(new HostError('CANCELLED', `request ${request.target} was cancelled`));
        return reply(request.seq, { cancelled: target !== undefined });
      }
      case 'shutdown':
        for (const r of running.values()) r.controller.abort(new HostError('CANCELLED', 'the engine host is shutting down'));
        void queue.then(() => {
          engine.dispose();
          reply(request.seq, { ok: true });
          options.onShutdown?.();
        });
        return;
      default:
        return enqueue(request);
    }
  }

  transport.onRequest((message) => {
    if (!isHostRequest(message)) return;
    try {
      handle(message);
    } catch (error) {
      fail(message.seq, error);
    }
  });
  transport.send({ type: 'ready', pid: process.pid });
}
