/**
 * The remote engine's wire: what an app sends to a `lorasmith serve` on another machine (reached through an SSH
 * tunnel to its 127.0.0.1) and what comes back, as JSON text frames on its WebSocket /t/<token>/engine.
 *
 * It is the engine host's protocol (host/protocol.ts) with one difference: no path crosses. A model, a dataset
 * file, an adapter or a checkpoint is named by its content hash (main/common/hash), sent once if the remote lacks
 * it, and the remote resolves the hash to a folder inside its own data directory. What a run writes comes back
 * as a list of files read by name from a run folder the remote made. Answers have the host's shapes
 * (event / result / error, by seq).
 */
import type { DatasetFormat } from '../../engine/train/datasets/formats';
import type { TrainSettingsInput } from '../../engine/train/settings';
import type { HostMachine, HostResults, TrainOutcome, WireChatMessage, WireSampling } from '../protocol';

/** Both sides refuse a peer of another protocol or app version (the message names both). */
export const REMOTE_PROTOCOL = 2;

/** The largest base64 payload of one chunk frame (4 MiB of bytes); the endpoint's frame limit leaves room. */
export const CHUNK_BYTES = 4 << 20;

/** A folder (hashFolder) or a single file (hashFile) by content: 'sha256:<64 hex>'. */
export interface ContentRef {
  readonly hash: string;
  readonly kind: 'folder' | 'file';
}

/** A file of an upload or of a run's output: '/'-separated path relative to its folder, and its size. */
export interface WireFile {
  readonly path: string;
  readonly bytes: number;
}

/** A training job by content: the remote picks its own output and checkpoint folders. */
export interface RemoteTrainJob {
  readonly model: ContentRef;
  readonly baseModelHash: string | null;
  readonly dataset: { readonly file: ContentRef; readonly format: DatasetFormat };
  readonly settings: TrainSettingsInput;
  readonly parentAdapter?: ContentRef;
  readonly resumeFrom?: ContentRef;
}

/** The engine requests a remote serves, each as the host request of the same type with content for paths. */
export type RemoteEngineRequest =
  | { readonly type: 'status' }
  | { readonly type: 'backend' }
  | { readonly type: 'machine' }
  | { readonly type: 'loadBase'; readonly model: ContentRef }
  | { readonly type: 'modules'; readonly model: ContentRef }
  | { readonly type: 'loadAdapter'; readonly name: string; readonly adapter: ContentRef }
  | { readonly type: 'unloadAdapter'; readonly name: string }
  | { readonly type: 'setActive'; readonly adapters: readonly { readonly name: string; readonly scale: number }[] }
  | {
      readonly type: 'generate';
      readonly model: ContentRef;
      readonly adapters: readonly { readonly name: string; readonly adapter: ContentRef; readonly scale: number }[];
      readonly messages: readonly WireChatMessage[];
      readonly sampling: WireSampling;
    }
  | { readonly type: 'train' | 'checkJob' | 'estimate' | 'measurePrecision'; readonly job: RemoteTrainJob }
  | { readonly type: 'cancel'; readonly target: number };

export type RemoteEngineRequestType = RemoteEngineRequest['type'];

/** Every frame the app sends: the handshake, content transfer, reading a run's output, and engine requests. */
export type RemoteMessage =
  | { readonly seq: number; readonly type: 'hello'; readonly product: 'lorasmith'; readonly version: string; readonly protocol: number }
  | { readonly seq: number; readonly type: 'has'; readonly refs: readonly ContentRef[] }
  /** Starts an upload of `ref`: its files, in path order, as hashFolder reads them (one file for kind 'file'). */
  | { readonly seq: number; readonly type: 'upload'; readonly ref: ContentRef; readonly files: readonly WireFile[] }
  /** The next bytes of the upload, in order (files one after the other), base64. */
  | { readonly seq: number; readonly type: 'chunk'; readonly upload: string; readonly data: string }
  /** All bytes sent: the remote checks the hash and only then keeps the content. */
  | { readonly seq: number; readonly type: 'commit'; readonly upload: string }
  /** The files of a folder of a run (its output, or a checkpoint named by a progress event). */
  | { readonly seq: number; readonly type: 'files'; readonly run: string; readonly folder: string }
  /** Bytes of a file of a run, by its path in the run folder ('output/adapter_model.safetensors'). */
  | { readonly seq: number; readonly type: 'read'; readonly run: string; readonly path: string; readonly offset: number; readonly length: number }
  /** The app has what it needed of a run's output: the remote removes the run folder. */
  | { readonly seq: number; readonly type: 'release'; readonly run: string }
  | { readonly seq: number; readonly type: 'engine'; readonly request: RemoteEngineRequest };

/** What the remote says about itself in answer to hello. */
export interface RemoteHello {
  readonly product: 'lorasmith';
  readonly version: string;
  readonly protocol: number;
  readonly machine: Omit<HostMachine, 'remote'>;
}

/** A folder of a run on the remote ('output', 'checkpoints/checkpoint-4') and its files, read back with `read`. */
export interface RemoteOutput {
  readonly run: string;
  readonly folder: string;
  readonly files: readonly WireFile[];
}

/**
 * train's result over the wire: the adapter as a remote output instead of a path. Its progress events name a
 * checkpoint as '<run>/checkpoints/checkpoint-<step>' (listed with `files`) instead of a path.
 */
export interface RemoteTrainOutcome extends Omit<TrainOutcome, 'adapterDir' | 'lastCheckpoint'> {
  /** The run's folder on the remote, kept until the app releases it (it may still be reading a checkpoint). */
  readonly run: string;
  readonly adapter: RemoteOutput | null;
}

/** What each message resolves to (engine requests: the host's results, with content hashes where paths were). */
export interface RemoteResults {
  hello: RemoteHello;
  has: { readonly missing: readonly ContentRef[] };
  upload: { readonly upload: string };
  chunk: { readonly received: number };
  commit: ContentRef;
  files: { readonly files: readonly WireFile[] };
  read: { readonly data: string };
  release: { readonly released: boolean };
  engine: HostResults[Exclude<RemoteEngineRequestType, 'train'>] | RemoteTrainOutcome;
}

export const CONTENT_HASH = /^sha256:[0-9a-f]{64}$/;
