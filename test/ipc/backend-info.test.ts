/** app.info's backend report: no wait while the host is not running, kept once known, asked again after a failure. */
import { describe, expect, it } from 'vitest';
import { backendReporter } from '../../main/ipc/backend-info';
import type { HostBackendInfo } from '../../main/host/protocol';

const INFO: HostBackendInfo = {
  name: 'wasm', requested: 'auto', matmulKernels: 'native sgemm', available: [{ name: 'wasm', usable: true, detail: 'SIMD' }],
  selfTest: 'passed in 9 ms', fallback: null,
};

function fakeHost(answers: (() => Promise<HostBackendInfo>)[], running = false) {
  const host = { running, generation: 1, calls: 0, call: () => { const next = answers[host.calls++]; return next ? next() : Promise.reject(new Error('no answer')); } };
  return host;
}

describe('backendReporter', () => {
  it('answers null at once while the host is starting, then the report, kept', async () => {
    let resolve!: (info: HostBackendInfo) => void;
    const host = fakeHost([() => new Promise((r) => (resolve = r))]);
    const report = backendReporter(host as never, 10_000);
    const started = Date.now();
    expect(await report()).toBeNull();
    expect(Date.now() - started).toBeLessThan(1000);
    resolve(INFO);
    await new Promise((r) => setTimeout(r, 0));
    expect(await report()).toEqual(INFO);
    expect(host.calls).toBe(1);
  });

  it('waits for a running host, and asks again after a failure', async () => {
    const host = fakeHost([() => Promise.reject(new Error('HOST_DIED')), () => Promise.resolve(INFO)], true);
    const report = backendReporter(host as never, 5000);
    expect(await report()).toBeNull();
    expect(await report()).toEqual(INFO);
    expect(host.calls).toBe(2);
  });

  it('asks the next host again: a restart (another backend setting) makes a new report', async () => {
    const webgpu: HostBackendInfo = { ...INFO, name: 'webgpu', requested: 'webgpu' };
    const host = fakeHost([() => Promise.resolve(INFO), () => Promise.resolve(webgpu)], true);
    const report = backendReporter(host as never, 5000);
    expect(await report()).toEqual(INFO);
    expect(await report()).toEqual(INFO);
    host.generation += 2; // stopped, then started with the new setting
    expect(await report()).toEqual(webgpu);
    expect(host.calls).toBe(2);
  });
});
