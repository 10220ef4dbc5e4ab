// `npm start`: build the app and launch it in Electron; where Electron's binary cannot be obtained
// (no internet, no display), say so and serve the same UI in browser mode instead.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function run(command, args) {
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

run(process.execPath, ['node_modules/electron-vite/bin/electron-vite.js', 'build', '-c', 'electron.config.ts']);

let electronPath = null;
let reason = '';
try {
  electronPath = require('electron');
} catch (error) {
  reason = error instanceof Error ? error.message : String(error);
}

if (electronPath && (process.platform !== 'linux' || process.env.DISPLAY || process.env.WAYLAND_DISPLAY)) {
  const child = spawn(electronPath, ['.'], { stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 0));
} else {
  if (!reason) reason = 'no display was found (DISPLAY and WAYLAND_DISPLAY are unset)';
  console.log(
    [
      '',
      'Lorasmith could not start its desktop window: ' + reason.split('\n')[0],
      'Electron downloads its binary on first launch, which needs internet access and a display. Lorasmith will',
      'run in browser mode instead: the same interface and the same engine, served on 127.0.0.1 only, at the',
      'address printed below (it carries a one-time token; keep it private). Stop it with Ctrl-C.',
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, ['bin/lorasmith.js', 'serve'], { stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 0));
}
