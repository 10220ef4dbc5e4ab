/** Spawns the engine host as an Electron utilityProcess: a crash or out-of-memory there never takes the app down. */
import { env } from 'node:process';
import { utilityProcess } from 'electron';
import type { HostProcess, HostSettings, HostSpawner } from '../host/client';
import type { HostMessage } from '../host/protocol';

export function utilityHost(entry: string, log: (line: string) => void): HostSpawner {
  return (settings: HostSettings) => {
    const child = utilityProcess.fork(entry, [], {
      serviceName: 'Lorasmith engine', stdio: 'pipe', env: { ...env, LORASMITH_BACKEND: settings.backend },
    });
    child.stdout?.on('data', (chunk: Buffer) => log(`[engine] ${String(chunk).trimEnd()}`));
    child.stderr?.on('data', (chunk: Buffer) => log(`[engine:err] ${String(chunk).trimEnd()}`));
    const process: HostProcess = {
      post: (request) => child.postMessage(request),
      onMessage: (listener) => child.on('message', (message: HostMessage) => listener(message)),
      onExit: (listener) => child.once('exit', (code) => listener(`the engine process exited with code ${code}`)),
      kill: () => void child.kill(),
    };
    return process;
  };
}
