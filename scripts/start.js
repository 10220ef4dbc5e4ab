// `npm start`: build the app and launch it in Electron; where Electron's binary cannot be obtained
// (no internet, no display), say so and serve the same UI in browser mode instead.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');

function run(command, args) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

/**
 * better-sqlite3 for Electron's ABI, built in a copy under .electron-native/ so node_modules stays built for Node
 * (the tests and the CLI use it). main/index.ts passes the result to better-sqlite3 as `nativeBinding`.
 * Returns null where it could not be built (the app then reports why on start).
 */
function prepareElectronSqlite() {
  const electronVersion = JSON.parse(readFileSync(join(root, 'node_modules/electron/package.json'), 'utf8')).version;
  const source = join(root, 'node_modules/better-sqlite3');
  const target = join(root, '.electron-native/node_modules/better-sqlite3');
  const binary = join(target, 'build/Release/better_sqlite3.node');
  const stamp = join(target, '.electron-version');
  const sqliteVersion = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8')).version;
  const wanted = `${electronVersion} ${sqliteVersion} ${process.platform}-${process.arch}`;
  if (existsSync(binary) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) return binary;
  console.log(`Building better-sqlite3 ${sqliteVersion} for Electron ${electronVersion} in .electron-native/ ...`);
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  cpSync(source, target, { recursive: true, filter: (path) => !path.includes(`${join('better-sqlite3', 'build')}`) });
  const electronArgs = ['--runtime=electron', `--target=${electronVersion}`, `--arch=${process.arch}`];
  const tries = [
    // A prebuilt binary for this Electron, when the network allows.
    [process.execPath, [join(root, 'node_modules/prebuild-install/bin.js'), ...electronArgs]],
    // Else compile against Electron's headers.
    [process.execPath, [join(root, 'node_modules/node-gyp/bin/node-gyp.js'), 'rebuild', '--release', `--target=${electronVersion}`, `--arch=${process.arch}`, '--dist-url=https://electronjs.org/headers']],
  ];
  for (const [command, args] of tries) {
    const result = spawnSync(command, args, { cwd: target, stdio: 'inherit' });
    if (result.status === 0 && existsSync(binary)) {
      writeFileSync(stamp, wanted);
      return binary;
    }
  }
  console.log('Could not build better-sqlite3 for Electron; see the messages above.');
  return null;
}

run(process.execPath, ['node_modules/electron-vite/bin/electron-vite.js', 'build', '-c', 'electron.config.ts']);

/**
 * Electron's binary, downloading it on first launch. Its own loader (require('electron')) would print the
 * download's stack trace and install advice; here the download's output is kept and summed up in one line.
 */
function electronBinary() {
  const dir = join(root, 'node_modules/electron');
  const pathFile = join(dir, 'path.txt');
  const binary = () => {
    if (!existsSync(pathFile)) return null;
    const path = join(dir, 'dist', readFileSync(pathFile, 'utf8').trim());
    return existsSync(path) ? path : null;
  };
  if (!existsSync(join(dir, 'install.js'))) return { path: null, reason: 'the electron package is not installed (run npm install)' };
  if (binary()) return { path: binary(), reason: '' };
  console.log("Downloading Electron's binary (first launch only) ...");
  const result = spawnSync(process.execPath, [join(dir, 'install.js')], { cwd: dir, encoding: 'utf8', timeout: 600_000 });
  if (binary()) return { path: binary(), reason: '' };
  const output = `${result.stdout ?? ''}\n${result.stderr ?? ''}`;
  const offline = /fetch failed|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|getaddrinfo/i.test(output);
  const firstError = output.split('\n').map((l) => l.trim()).find((l) => /error/i.test(l) && !l.startsWith('at ')) ?? 'no reason given';
  return {
    path: null,
    reason: offline
      ? "Electron's binary could not be downloaded (no connection to github.com: offline, or a proxy or firewall blocks it)"
      : `Electron's binary could not be downloaded (${firstError})`,
  };
}

const electron = electronBinary();
const electronPath = electron.path;
let reason = electron.reason;

if (electronPath && (process.platform !== 'linux' || process.env.DISPLAY || process.env.WAYLAND_DISPLAY) && prepareElectronSqlite()) {
  const child = spawn(electronPath, ['.'], { stdio: 'inherit', cwd: root });
  child.on('exit', (code) => process.exit(code ?? 0));
} else {
  if (!reason) {
    reason = electronPath ? 'better-sqlite3 could not be built for Electron' : 'no display was found (DISPLAY and WAYLAND_DISPLAY are unset)';
  }
  console.log(
    [
      '',
      'Lorasmith could not start its desktop window: ' + reason.split('\n')[0] + '.',
      'Electron downloads its binary on first launch, which needs internet access and a display. Lorasmith will',
      'run in browser mode instead: the same interface and the same engine, served on 127.0.0.1 only, at the',
      'address printed below (it carries a one-time token; keep it private). Stop it with Ctrl-C.',
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, ['bin/lorasmith.js', 'serve', ...process.argv.slice(2)], { stdio: 'inherit', cwd: root });
  process.on('SIGINT', () => child.kill('SIGINT'));
  child.on('exit', (code) => process.exit(code ?? 0));
}
