import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultDataDir, resolveDataDir } from '../../main/app/data-dir';
import { DEFAULT_WINDOW_STATE, loadWindowState, saveWindowState } from '../../main/app/window-state';

const dir = mkdtempSync(join(tmpdir(), 'lorasmith-window-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('window state', () => {
  it('round-trips bounds and maximized', () => {
    saveWindowState(dir, { x: 10, y: 20, width: 1000, height: 700, maximized: true });
    expect(loadWindowState(dir)).toEqual({ x: 10, y: 20, width: 1000, height: 700, maximized: true });
  });
  it('falls back to the default for a corrupt or implausible file', () => {
    writeFileSync(join(dir, 'window-state.json'), '{not json');
    expect(loadWindowState(dir)).toEqual(DEFAULT_WINDOW_STATE);
    writeFileSync(join(dir, 'window-state.json'), JSON.stringify({ width: 5, height: 5 }));
    expect(loadWindowState(dir)).toEqual(DEFAULT_WINDOW_STATE);
  });
});

describe('data directory', () => {
  it('prefers --data-dir, then LORASMITH_HOME, then the default', () => {
    expect(resolveDataDir('/a', { LORASMITH_HOME: '/b' }, '/c')).toBe('/a');
    expect(resolveDataDir(undefined, { LORASMITH_HOME: '/b' }, '/c')).toBe('/b');
    expect(resolveDataDir(undefined, {}, '/c')).toBe('/c');
  });
  it('uses the OS convention', () => {
    expect(defaultDataDir({ XDG_DATA_HOME: '/x' }, 'linux')).toBe('/x/lorasmith');
    expect(defaultDataDir({ APPDATA: 'C:\\Users\\u\\AppData\\Roaming' }, 'win32')).toContain('Lorasmith');
    expect(defaultDataDir({}, 'darwin')).toMatch(/Library\/Application Support\/Lorasmith$/);
  });
});
