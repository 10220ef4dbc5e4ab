/**
 * Entry of the engine host inside an Electron utilityProcess. The engine itself is served by serve()
 * (main/host/serve.ts) once it exists; until then the process only reports that it started.
 */
const port = (process as NodeJS.Process & { parentPort?: { postMessage(message: unknown): void } }).parentPort;
port?.postMessage({ type: 'ready' });
