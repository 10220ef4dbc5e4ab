/**
 * scripts/build-native.js never fails an install: a switched-off or failing build is one line and exit code 0.
 * (The real build is exercised by `npm install` and the kernel tests that load its output.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const script = resolve(import.meta.dirname, '../../../scripts/build-native.js');
const scratch = mkdtempSync(join(tmpdir(), 'build-native-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function runBuild(env: Record<string, string>, args: string[] = []): { status: number | null; lines: string[] } {
  const result = spawnSync(process.execPath, [script, ...args], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, LORASMITH_NATIVE: '', ...env },
  });
  return { status: result.status, lines: result.stdout.trim().split('\n').filter(Boolean) };
}

describe('scripts/build-native.js', () => {
  it('skips when LORASMITH_NATIVE=0, in one line, exit 0', () => {
    const { status, lines } = runBuild({ LORASMITH_NATIVE: '0' });
    expect(status).toBe(0);
    expect(lines).toEqual(['lorasmith native: skipped (LORASMITH_NATIVE=0)']);
  });

  it('reports a failed compile as one line naming the error, exit 0', () => {
    // A stand-in node-gyp that fails the way a machine without OpenBLAS headers does.
    const fakeGyp = join(scratch, 'node-gyp.js');
    writeFileSync(fakeGyp, "console.error('../src/blas.c:6:10: fatal error: cblas.h: No such file or directory'); process.exit(1);\n");
    // --force: build even where a prebuilt binary sits in native/prebuilds (a release checkout).
    const { status, lines } = runBuild({ npm_config_node_gyp: fakeGyp }, ['--force']);
    expect(status).toBe(0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^lorasmith native: skipped: build failed \(.*fatal error: cblas\.h: No such file or directory\);/);
    expect(lines[0]).toContain('the plain wasm/cpu kernels will be used');
  });
});
