/**
 * The real `lorasmith serve` (main/cli/serve.ts serveLibrary: lock, library, starter, engine host, handlers,
 * browser server) in a process of its own, serving a given renderer folder: vitest runs before `npm run build`,
 * so the built interface may not exist yet. Usage: serve-entry.ts <dataDir> <rendererDir> <resourcesDir>
 */
import { serveLibrary } from '../../../main/cli/serve';

const [dataDir, rendererDir, resourcesDir] = process.argv.slice(2);
if (!dataDir || !rendererDir || !resourcesDir) throw new Error('usage: serve-entry.ts <dataDir> <rendererDir> <resourcesDir>');
const controller = new AbortController();
process.once('SIGINT', () => controller.abort());
process.once('SIGTERM', () => controller.abort());
process.exitCode = await serveLibrary(
  { dataDir, port: 0, rendererDir, resourcesDir },
  { out: (t) => process.stdout.write(t + '\n'), err: (t) => process.stderr.write(t + '\n'), signal: controller.signal },
).catch((error: unknown) => {
  const e = error as { code?: string; message?: string };
  process.stderr.write(`lorasmith: ${e.code ? `[${e.code}] ` : ''}${e.message ?? String(error)}\n`);
  return 1;
});
