/** The machine an engine runs on: what the host's `machine` request and a remote engine's hello answer. */
import { arch, cpus, hostname, platform, totalmem } from 'node:os';
import type { HostMachine } from './protocol';

export function thisMachine(): HostMachine {
  return { hostname: hostname(), platform: platform(), arch: arch(), cpus: cpus().length, memoryBytes: totalmem(), remote: null };
}

/** One line for people: the library's "trained on" and Settings. */
export function describeMachine(machine: Omit<HostMachine, 'remote'>): string {
  return `${machine.hostname} (${machine.platform} ${machine.arch}, ${machine.cpus} CPUs, ${Math.round(machine.memoryBytes / 2 ** 30)} GiB)`;
}
