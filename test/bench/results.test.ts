/**
 * bench/RESULTS.md is assembled, never typed: it is exactly its header followed by the sections in bench/results/
 * (each written by a benchmark, saying when it was measured), every benchmark has its section, and a partial run
 * that rewrites one section keeps the others.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assembleResults } from '../../bench/run';

const bench = join(import.meta.dirname, '../../bench');
const temp = mkdtempSync(join(tmpdir(), 'lorasmith-results-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** The header lines, and the sections joined as the assembler joins them. */
function split(results: string): { header: string[]; body: string } {
  const lines = results.split('\n');
  return { header: lines.slice(0, 5), body: lines.slice(5).join('\n') };
}

describe('bench/RESULTS.md', () => {
  it('is the header and then every section file, in name order, with nothing typed between', () => {
    const files = readdirSync(join(bench, 'results')).filter((f) => f.endsWith('.md')).sort();
    const sections = files.map((f) => readFileSync(join(bench, 'results', f), 'utf8').trimEnd());
    const { header, body } = split(readFileSync(join(bench, 'RESULTS.md'), 'utf8'));
    expect(header[0]).toBe('# Benchmark results');
    expect(header[2]).toMatch(/^Machine: \d+ × .+, \d+ GiB, Node v[\d.]+, \w+-\w+$/);
    expect(header[3]).toMatch(/^Assembled \d{4}-\d{2}-\d{2} by `npm run bench` from bench\/results\/\*\.md/);
    expect(body).toBe(`${sections.join('\n\n')}\n`);
  });

  it('has a section for every benchmark, each saying when, where and under what load it was measured', () => {
    const names = readdirSync(bench).filter((f) => f.endsWith('.bench.ts')).map((f) => f.replace(/\.bench\.ts$/, ''));
    for (const name of names) {
      const section = readFileSync(join(bench, 'results', `${name}.md`), 'utf8');
      expect(section, name).toMatch(/^## .+\n\n_Measured \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC on .+; load average at the end [\d.]+, [\d.]+, [\d.]+/);
    }
  });

  it('speaks of the project only', () => {
    expect(readFileSync(join(bench, 'RESULTS.md'), 'utf8')).not.toMatch(/\b(helper|session|hook|agent|team member)s?\b/i);
  });
});

describe('assembleResults', () => {
  it('rewrites RESULTS.md from the sections, so a partial run updates its own and keeps the others', () => {
    mkdirSync(join(temp, 'results'));
    writeFileSync(join(temp, 'results', 'b.md'), '## B\n\nfirst b\n');
    writeFileSync(join(temp, 'results', 'a.md'), '## A\n\nonly a\n');
    assembleResults(temp);
    expect(split(readFileSync(join(temp, 'RESULTS.md'), 'utf8')).body).toBe('## A\n\nonly a\n\n## B\n\nfirst b\n');
    writeFileSync(join(temp, 'results', 'b.md'), '## B\n\nsecond b\n');
    assembleResults(temp);
    expect(split(readFileSync(join(temp, 'RESULTS.md'), 'utf8')).body).toBe('## A\n\nonly a\n\n## B\n\nsecond b\n');
  });
});
