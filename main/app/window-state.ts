/** The main window's bounds and maximized state, remembered in window-state.json beside the app's settings. */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface WindowState {
  readonly x?: number;
  readonly y?: number;
  readonly width: number;
  readonly height: number;
  readonly maximized: boolean;
}

export const DEFAULT_WINDOW_STATE: WindowState = { width: 1280, height: 800, maximized: false };
const FILE = 'window-state.json';

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A missing, unreadable or implausible file gives the default (never a window off every screen or 0 wide). */
export function loadWindowState(dir: string): WindowState {
  try {
    const raw = JSON.parse(readFileSync(join(dir, FILE), 'utf8')) as Record<string, unknown>;
    if (!finite(raw.width) || !finite(raw.height) || raw.width < 400 || raw.height < 300) return DEFAULT_WINDOW_STATE;
    return {
      width: Math.round(raw.width), height: Math.round(raw.height), maximized: raw.maximized === true,
      ...(finite(raw.x) && finite(raw.y) ? { x: Math.round(raw.x), y: Math.round(raw.y) } : {}),
    };
  } catch {
    return DEFAULT_WINDOW_STATE;
  }
}

export function saveWindowState(dir: string, state: WindowState): void {
  const temp = join(dir, `${FILE}.tmp`);
  writeFileSync(temp, JSON.stringify(state) + '\n');
  renameSync(temp, join(dir, FILE));
}
