/**
 * `probe(id, fn)`: one vitest test per catalog entry that also records whether the probe held, for the
 * reliability table that table.ts writes when the whole suite has run.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { it } from 'vitest';
import { PROBES, type ProbeId } from './catalog';
import { REPO } from './server';

export const RESULTS_FILE = join(REPO, 'test-results', 'probes', 'results.jsonl');

export function recordOutcome(id: ProbeId, held: boolean): void {
  mkdirSync(dirname(RESULTS_FILE), { recursive: true });
  appendFileSync(RESULTS_FILE, JSON.stringify({ id, held }) + '\n');
}

export function probe(id: ProbeId, fn: () => Promise<void>, timeoutMs?: number): void {
  const entry = PROBES[id];
  it(`${id}: ${entry.input} → ${entry.holds}`, async () => {
    try {
      await fn();
    } catch (error) {
      recordOutcome(id, false);
      throw error;
    }
    recordOutcome(id, true);
  }, timeoutMs);
}
