/** The remote engine's messages (host/remote/protocol.ts) as schemas: every frame is parsed here before it acts. */
import { z } from 'zod';
import { CHUNK_BYTES, CONTENT_HASH } from '../../host/remote/protocol';
import { datasetFormat, sampling, trainingSettings } from '../schemas';

const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const ref = z.object({ hash: z.string().regex(CONTENT_HASH, "a content hash is 'sha256:' and 64 hex digits"), kind: z.enum(['folder', 'file']) }).strict();
const name = z.string().min(1).max(200);
const file = z.object({ path: z.string().min(1).max(1024), bytes: z.number().int().min(0).max(2 ** 50) }).strict();
const runKey = z.string().regex(/^[0-9a-f]{16}$/, 'a run key is 16 hex digits');
const runFolder = z.string().regex(/^(output|checkpoints\/checkpoint-\d{1,12})$/, "a run's folder is output or checkpoints/checkpoint-<step>");

const job = z.object({
  model: ref,
  baseModelHash: z.string().regex(CONTENT_HASH).nullable(),
  dataset: z.object({ file: ref, format: datasetFormat }).strict(),
  settings: trainingSettings,
  parentAdapter: ref.optional(),
  resumeFrom: ref.optional(),
}).strict();

const message = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(1_000_000) }).strict();
const scaled = z.object({ name, scale: z.number().min(-16).max(16) }).strict();

export const engineRequest = z.discriminatedUnion('type', [
  z.object({ type: z.literal('status') }).strict(),
  z.object({ type: z.literal('backend') }).strict(),
  z.object({ type: z.literal('machine') }).strict(),
  z.object({ type: z.literal('loadBase'), model: ref }).strict(),
  z.object({ type: z.literal('modules'), model: ref }).strict(),
  z.object({ type: z.literal('loadAdapter'), name, adapter: ref }).strict(),
  z.object({ type: z.literal('unloadAdapter'), name }).strict(),
  z.object({ type: z.literal('setActive'), adapters: z.array(scaled).max(64) }).strict(),
  z.object({
    type: z.literal('generate'), model: ref, messages: z.array(message).min(1).max(1000), sampling,
    adapters: z.array(z.object({ name, adapter: ref, scale: z.number().min(-16).max(16) }).strict()).max(64),
  }).strict(),
  z.object({ type: z.enum(['train', 'checkJob', 'estimate', 'measurePrecision']), job }).strict(),
  z.object({ type: z.literal('cancel'), target: seq }).strict(),
]);

export const remoteMessage = z.discriminatedUnion('type', [
  z.object({ seq, type: z.literal('hello'), product: z.string().max(100), version: z.string().max(100), protocol: z.number() }).strict(),
  z.object({ seq, type: z.literal('has'), refs: z.array(ref).max(1000) }).strict(),
  z.object({ seq, type: z.literal('upload'), ref, files: z.array(file).max(100_000) }).strict(),
  z.object({ seq, type: z.literal('chunk'), upload: z.string().max(64), data: z.string().max(Math.ceil(CHUNK_BYTES / 3) * 4).base64() }).strict(),
  z.object({ seq, type: z.literal('commit'), upload: z.string().max(64) }).strict(),
  z.object({ seq, type: z.literal('files'), run: runKey, folder: runFolder }).strict(),
  z.object({ seq, type: z.literal('read'), run: runKey, path: z.string().min(1).max(1024), offset: z.number().int().min(0), length: z.number().int().min(1).max(CHUNK_BYTES) }).strict(),
  z.object({ seq, type: z.literal('release'), run: runKey }).strict(),
  z.object({ seq, type: z.literal('engine'), request: engineRequest }).strict(),
]);
