/**
 * Probes on the library as a whole, against real server processes: two servers on one data folder, a server
 * killed with -9 and started again.
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { join } from 'node:path';
import { probe } from '../support/probes/record';
import { libraryState, ServerExited, startServer, stillAnswers, tempDir } from '../support/probes/server';

let temp: ReturnType<typeof tempDir>;

beforeAll(() => {
  temp = tempDir('probe-library');
});

afterAll(() => temp.remove());

describe('one library, one owner', () => {
  probe('two-servers-one-dir', async () => {
    const dataDir = join(temp.dir, 'shared');
    const first = await startServer(dataDir);
    try {
      const before = libraryState(dataDir);
      const second = await startServer(dataDir).then(async (s) => {
        await s.stop();
        throw new Error(`a second server started on a library in use:\n${s.output()}`);
      }, (error: unknown) => error);
      expect(second).toBeInstanceOf(ServerExited);
      const { code, output } = second as ServerExited;
      expect(code).toBe(1);
      expect(output).toContain('[LIBRARY_IN_USE]');
      expect(output).toMatch(new RegExp(`in use by lorasmith serve \\(pid ${first.child.pid}, since \\d{4}-\\d\\d-\\d\\dT`));
      expect(await stillAnswers(first)).toBe(true);
      expect(libraryState(dataDir)).toEqual(before);
    } finally {
      expect(await first.stop()).toBe(0);
    }
    // Once the first has stopped, the library opens again.
    const again = await startServer(dataDir);
    expect(again.output()).not.toContain('Took over');
    expect(await again.stop()).toBe(0);
  });

  probe('stale-lock', async () => {
    const dataDir = join(temp.dir, 'killed');
    const first = await startServer(dataDir);
    const pid = first.child.pid;
    first.child.kill('SIGKILL');
    await first.stop();
    const next = await startServer(dataDir);
    try {
      expect(next.output()).toContain(`Took over the library from lorasmith serve (pid ${pid}`);
      expect(await stillAnswers(next)).toBe(true);
    } finally {
      expect(await next.stop()).toBe(0);
    }
  });
});
