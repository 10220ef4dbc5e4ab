/**
 * vitest's global setup for the reliability suite: clears the probe outcomes before a run and, after a run that
 * tried every probe in the catalog, writes bench/results/reliability.md (probes tried / held) and reassembles bench/RESULTS.md. A partial run (one
 * test file) leaves the table as it was.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { assembleResults } from '../../../bench/run';
import { PROBES, type ProbeId } from './catalog';

const REPO = join(import.meta.dirname, '../../..');
const RESULTS_FILE = join(REPO, 'test-results', 'probes', 'results.jsonl');
export const TABLE_FILE = join(REPO, 'bench', 'results', 'reliability.md');

export function setup(): void {
  rmSync(RESULTS_FILE, { force: true });
}

/** The section for bench/RESULTS.md, from each probe's outcome (a probe run twice holds only if both held). */
export function reliabilitySection(outcomes: ReadonlyMap<ProbeId, boolean>): string {
  const ids = Object.keys(PROBES) as ProbeId[];
  const held = ids.filter((id) => outcomes.get(id) === true).length;
  const rows = ids.map((id) => {
    const p = PROBES[id];
    return `| ${p.area} | ${p.input.replace(/\|/g, '\\|')} | ${p.holds.replace(/\|/g, '\\|')} | ${outcomes.get(id) ? 'held' : 'FAILED'} |`;
  });
  return [
    '## Reliability',
    '',
    `Hostile and clumsy input against the real server, the CLI and the library (test/probes/, written by \`npm test\`):`,
    `**${ids.length} probes tried, ${held} held.**`,
    '',
    '| Area | Input | Must hold | Result |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

export function teardown(): void {
  if (!existsSync(RESULTS_FILE)) return;
  const outcomes = new Map<ProbeId, boolean>();
  for (const line of readFileSync(RESULTS_FILE, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const { id, held } = JSON.parse(line) as { id: ProbeId; held: boolean };
    if (id in PROBES) outcomes.set(id, (outcomes.get(id) ?? true) && held);
  }
  if (Object.keys(PROBES).some((id) => !outcomes.has(id as ProbeId))) return; // a partial run
  mkdirSync(dirname(TABLE_FILE), { recursive: true });
  writeFileSync(TABLE_FILE, reliabilitySection(outcomes));
  assembleResults(); // bench/RESULTS.md is its sections, this one included
}
