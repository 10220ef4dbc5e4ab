// Lint, including the house's layering rules (../shared/ARCHITECTURE.md "Rooms and who may import whom").
// test/unit/layering.test.ts checks the same arrows by reading import lines, so a rule cannot silently vanish.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';

const nodeBuiltins = ['node:*', 'fs', 'fs/*', 'path', 'os', 'child_process', 'worker_threads', 'crypto', 'url'];

function forbid(patterns, message) {
  return { 'no-restricted-imports': ['error', { patterns: [{ group: patterns, message }] }] };
}

export default tseslint.config(
  { ignores: ['out/**', 'dist/**', 'release/**', 'node_modules/**', 'test-results/**', 'playwright-report/**', 'native/build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...svelte.configs['flat/recommended'],
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.svelte', '**/*.svelte.ts'],
    languageOptions: { parserOptions: { parser: tseslint.parser }, globals: { ...globals.browser } },
  },
  { files: ['main/**/*.ts', 'preload/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'error' } },
  {
    // Synchronous reads stall the device queue and fail on webgpu (its sync path needs a canvas Node lacks).
    files: ['main/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.property.name=/^(dataSync|arraySync|bufferSync)$/], CallExpression[callee.property.value=/^(dataSync|arraySync|bufferSync)$/]",
        message: 'no synchronous tensor reads in main/: await t.data() (main/engine/backend/read.ts); kernels read backend memory through the backend itself',
      }],
    },
  },
  {
    files: ['main/engine/**/*.ts'],
    rules: forbid(['electron', 'better-sqlite3', '**/store/**', '**/services/**', '**/ipc/**', '**/host/**', '**/cli/**', '**/preload/**'],
      'the engine is pure TypeScript on TensorFlow.js: no Electron, SQLite, store, services, ipc, host or cli'),
  },
  {
    files: ['main/common/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '^(?!node:|\\./[^/]+$)', message: 'main/common is shared by the engine and the store: node built-ins and its own files only' }],
      }],
    },
  },
  {
    files: ['main/store/**/*.ts'],
    rules: forbid(['electron', '**/engine/**', '**/services/**', '**/ipc/**', '**/host/**', '**/cli/**'],
      'the store knows only SQLite and the file system'),
  },
  {
    files: ['main/host/**/*.ts'],
    rules: forbid(['better-sqlite3', '**/store/**', '**/services/**', '**/ipc/**', '**/cli/**'],
      'the host runs the engine; it does not touch the library or IPC'),
  },
  {
    files: ['main/ipc/**/*.ts'],
    rules: forbid(['**/engine/**'], 'ipc handlers stay thin: work on files goes to services (a worker) or the host, never the engine here'),
  },
  {
    files: ['main/services/**/*.ts'],
    ignores: ['main/services/file-work/jobs.ts', 'main/services/file-work/worker.ts'],
    rules: forbid(['electron', '**/engine/**', '**/ipc/**', '**/cli/**'],
      'services run on the main thread: the engine only in the file worker (file-work/jobs.ts), no Electron, ipc or cli'),
  },
  {
    files: ['main/services/file-work/jobs.ts'],
    rules: forbid(['electron', 'better-sqlite3', '**/store/**', '**/ipc/**', '**/cli/**'],
      'the file worker runs in a worker thread: no Electron, no store (one writer), no ipc or cli'),
  },
  {
    files: ['main/cli/**/*.ts'],
    rules: forbid(['electron'], 'the CLI is plain Node: no Electron'),
  },
  {
    files: ['preload/contract/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '^(?!\\./[^/]+$)', message: 'the contract imports nothing but its own files' }],
      }],
    },
  },
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.svelte'],
    languageOptions: { globals: { ...globals.browser } },
    rules: forbid(['electron', 'better-sqlite3', ...nodeBuiltins, '**/main/**', '**/preload/index*'],
      'the renderer sees only preload/contract types and talks through api'),
  },
);
