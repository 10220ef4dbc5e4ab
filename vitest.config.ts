import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

export default defineConfig({
  plugins: [svelte()],
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', 'node_modules/**'],
    // Two cores here and in CI: the engine's numeric tests are CPU-bound.
    maxWorkers: 2,
    testTimeout: 60_000,
    // The reliability suite's table (bench/results/reliability.md) is written after a run that tried every probe.
    globalSetup: ['test/support/probes/table.ts'],
    hookTimeout: 60_000,
  },
});
