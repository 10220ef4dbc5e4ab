/**
 * Where the library lives: --data-dir, else LORASMITH_HOME, else the OS's usual place for app data
 * (~/.local/share/lorasmith, ~/Library/Application Support/Lorasmith, %APPDATA%\Lorasmith). The Electron app
 * uses its userData folder instead, unless overridden the same way.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'Lorasmith');
  if (platform === 'win32') return join(env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), 'Lorasmith');
  return join(env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'lorasmith');
}

export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, fallback = defaultDataDir(env)): string {
  return resolve(flag ?? env.LORASMITH_HOME ?? fallback);
}
