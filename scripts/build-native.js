#!/usr/bin/env node
/**
 * Builds the optional native addon (native/: a BLAS sgemm for the tfjs matMul kernels) with node-gyp.
 * Run by `npm install` (postinstall) and by hand: `node scripts/build-native.js [--force]`.
 *
 * Never fails: without a compiler, OpenBLAS headers or Node headers it prints one line saying why it skipped and
 * exits 0; the engine then uses the plain wasm/cpu kernels. LORASMITH_NATIVE=0 skips the build; a prebuilt binary in
 * native/prebuilds/<platform>-<arch>/ is used as is unless --force.
 *
 * `--prebuild` (each platform's release job, before `npm run package`): after building, copies the addon to
 * native/prebuilds/<platform>-<arch>/ with the BLAS it needs beside it: on Linux libopenblas.so.0 and its
 * gfortran/quadmath runtimes (the addon's RPATH is $ORIGIN), on Windows the DLLs of %OPENBLAS_DIR%\bin (Node loads
 * addons with LOAD_WITH_ALTERED_SEARCH_PATH, so DLLs beside the .node are found); macOS uses the system's Accelerate.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const nativeDir = join(root, 'native');
const built = join(nativeDir, 'build', 'Release', 'lorasmith_native.node');
const prebuilt = join(nativeDir, 'prebuilds', `${process.platform}-${process.arch}`, 'lorasmith_native.node');
const logFile = join(nativeDir, 'build', 'build-native.log');
const prebuild = process.argv.includes('--prebuild');
const force = prebuild || process.argv.includes('--force');

function say(line) {
  console.log(`lorasmith native: ${line}`);
}

/** npm's own node-gyp (npm sets npm_config_node_gyp in scripts), else one in node_modules, else npm's bundled one. */
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  if (process.env.npm_execpath) {
    candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const npmBesideNode = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  candidates.push(npmBesideNode);
  return candidates.find((path) => path && existsSync(path));
}

/** Node's headers installed beside the node binary (distro packages, official tarballs): no download needed. */
function localNodeDir() {
  if (process.env.npm_config_nodedir) return undefined; // npm passes it to node-gyp already
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

/** The first line of the build log that says what went wrong, for the one-line summary. */
function firstError(log) {
  const lines = log.split('\n');
  const patterns = [/fatal error: .*/, /error: .*/i, /cannot find -l\S+/, /not found/i, /gyp ERR! stack Error: .*/];
  for (const pattern of patterns) {
    const line = lines.find((l) => pattern.test(l));
    if (line) return line.trim().replace(/^gyp ERR! stack /, '').slice(0, 200);
  }
  return 'see the log';
}

/** Loads the built addon in a child process (a crash there cannot break the install) and describes it. */
function probe(path) {
  const script = `const a = require(${JSON.stringify(path)}); const i = a.info();` +
    'console.log(`${i.config.split(" ").slice(0, 2).join(" ") || i.blas}, ${a.physicalCores()} physical cores`)';
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  return result.status === 0 ? { ok: true, text: result.stdout.trim() } : { ok: false, text: (result.stderr || '').split('\n')[0] };
}

/** The shared libraries to ship beside the addon on this platform (absolute paths). */
function blasLibraries() {
  if (process.platform === 'linux') {
    const ldd = spawnSync('ldd', [built], { encoding: 'utf8' });
    const direct = [...(ldd.stdout ?? '').matchAll(/(libopenblas[^\s]*) => (\S+)/g)].map((m) => m[2]);
    const openblas = direct[0];
    if (!openblas) return [];
    const deps = spawnSync('ldd', [openblas], { encoding: 'utf8' }).stdout ?? '';
    const runtimes = [...deps.matchAll(/(lib(?:gfortran|quadmath)[^\s]*) => (\S+)/g)].map((m) => m[2]);
    return [openblas, ...runtimes];
  }
  if (process.platform === 'win32') {
    const bin = join(process.env.OPENBLAS_DIR ?? 'C:/OpenBLAS', 'bin');
    return existsSync(bin) ? readdirSync(bin).filter((f) => f.toLowerCase().endsWith('.dll')).map((f) => join(bin, f)) : [];
  }
  return []; // macOS: Accelerate is part of the system
}

/** Copies the built addon and its BLAS into native/prebuilds/<platform>-<arch>/ for electron-builder to ship. */
function writePrebuild() {
  const dir = dirname(prebuilt);
  mkdirSync(dir, { recursive: true });
  copyFileSync(built, prebuilt);
  const libraries = blasLibraries();
  // Keep each library under the name the loader asks for (libopenblas.so.0), not its versioned target.
  for (const library of libraries) copyFileSync(realpathSync(library), join(dir, basename(library)));
  const loaded = probe(prebuilt);
  if (!loaded.ok) throw new Error(`prebuilt ${prebuilt} does not load: ${loaded.text}`);
  say(`prebuild in ${dir}: ${[basename(prebuilt), ...libraries.map((l) => basename(l))].join(', ')}`);
}

function main() {
  const flag = (process.env.LORASMITH_NATIVE ?? '').trim().toLowerCase();
  if (flag === '0' || flag === 'off' || flag === 'false') return say('skipped (LORASMITH_NATIVE=0)');
  if (existsSync(prebuilt) && !force) return say(`using prebuilt ${prebuilt}`);
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) return say('skipped: node-gyp not found (it ships with npm); the plain wasm/cpu kernels will be used');

  const args = [nodeGyp, 'rebuild', '--release'];
  const nodeDir = localNodeDir();
  if (nodeDir) args.push(`--nodedir=${nodeDir}`);
  const started = Date.now();
  const result = spawnSync(process.execPath, args, { cwd: nativeDir, encoding: 'utf8', timeout: 300_000 });
  const log = `${result.stdout ?? ''}\n${result.stderr ?? ''}\n${result.error ? String(result.error) : ''}`;
  mkdirSync(dirname(logFile), { recursive: true });
  writeFileSync(logFile, log);
  if (result.status !== 0 || !existsSync(built)) {
    return say(`skipped: build failed (${firstError(log)}); log in ${logFile}; the plain wasm/cpu kernels will be used`);
  }
  const loaded = probe(built);
  if (!loaded.ok) return say(`built but does not load (${loaded.text}); the plain wasm/cpu kernels will be used`);
  say(`built ${built} in ${((Date.now() - started) / 1000).toFixed(1)} s (${loaded.text})`);
  if (prebuild) writePrebuild();
}

try {
  main();
  process.exitCode = 0;
} catch (error) {
  say(`skipped: ${error instanceof Error ? error.message : String(error)}`);
  // An install never fails on the addon; a release job asking for a prebuild must.
  process.exitCode = prebuild ? 1 : 0;
}
