/**
 * bench/RESULTS.md is assembled, never typed: a fixed header, then each benchmark's section from bench/results/
 * (written by the benchmark, saying when, where and under what load it was measured) or, where a benchmark has
 * written none, a line saying it has not run; a partial `npm run bench -- NAME` rewrites its own section and keeps
 * the others.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBenchmarks } from '../../bench/run';

const bench = join(import.meta.dirname, '../../bench');
const temp = mkdtempSync(join(tmpdir(), 'lorasmith-results-'));
writeFileSync(join(temp, 'package.json'), '{ "type": "module" }\n'); // the benchmarks written below are ES modules, as the project's are
afterAll(() => rmSync(temp, { recursive: true, force: true }));

const HEADER = '# Benchmark results\n\nAssembled by `npm run bench` from bench/results/*.md';
const MEASURED = /^## .+\n\n_Measured \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC on \d+ × .+, \d+ GiB, Node v[\d.]+, \w+-\w+; load average at the end [\d.]+, [\d.]+, [\d.]+/;
const notRun = (name: string) =>
  `## ${name}\n\n_Not run yet: bench/${name}.bench.ts has written no section here (\`npm run bench -- ${name}\` measures it)._`;

/** The sections of an assembled file: what follows the header's blank line, split at each level-2 heading. */
function sectionsOf(text: string): string[] {
  expect(text.startsWith(HEADER)).toBe(true);
  const body = text.slice(text.indexOf('\n## ') + 1);
  return body.split(/\n\n(?=## )/).map((s) => s.trimEnd());
}

const benchmarks = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).map((f) => f.slice(0, -'.bench.ts'.length)).sort();
const sectionFiles = (dir: string) => {
  try {
    return readdirSync(join(dir, 'results')).filter((f) => f.endsWith('.md')).map((f) => f.slice(0, -3)).sort();
  } catch {
    return [];
  }
};

describe('bench/RESULTS.md', () => {
  const results = readFileSync(join(bench, 'RESULTS.md'), 'utf8');

  it('is each benchmark\'s section file in name order, or the line saying it has not run, then the other sections', () => {
    const written = sectionFiles(bench);
    const names = benchmarks(bench);
    const stale = 'bench/RESULTS.md is not what its sections assemble to: run `npm run bench -- --assemble`';
    const sections = sectionsOf(results);
    expect(names.length).toBeGreaterThan(0);
    expect(sections.slice(0, names.length), stale).toEqual(
      names.map((n) => (written.includes(n) ? readFileSync(join(bench, 'results', `${n}.md`), 'utf8').trimEnd() : notRun(n))));
    // Sections other tools write (the reliability table `npm test` rewrites after its run, the GPU check's report)
    // follow by heading: the test run that rewrites one reassembles RESULTS.md after this test has read it.
    const heading = (text: string) => text.split('\n')[0];
    expect(sections.slice(names.length).map(heading), stale).toEqual(
      written.filter((n) => !names.includes(n)).map((n) => heading(readFileSync(join(bench, 'results', `${n}.md`), 'utf8'))));
  });

  it('has, for every section a benchmark wrote, when, where and under what load it was measured', () => {
    for (const name of sectionFiles(bench)) {
      const section = readFileSync(join(bench, 'results', `${name}.md`), 'utf8');
      if (benchmarks(bench).includes(name)) expect(section, name).toMatch(MEASURED);
      else expect(section, name).toMatch(/^## /);
    }
  });

  it('speaks of the project only', () => {
    expect(results).not.toMatch(/\b(helper|session|hook|agent|team member)s?\b/i);
  });
});

describe('npm run bench -- NAME', () => {
  it('runs the matching benchmark in a child, writes its section, keeps the others and says which have not run', async () => {
    const dir = join(temp, 'bench');
    mkdirSync(join(dir, 'results'), { recursive: true });
    // Three tiny benchmarks: each section carries its child's pid, so a rewritten section is told from a kept one.
    for (const name of ['alpha', 'beta', 'gamma']) {
      writeFileSync(join(dir, `${name}.bench.ts`),
        `export async function run(): Promise<string> { return '## ${name} title\\n\\n| pid |\\n|---|\\n| ' + process.pid + ' |'; }\n`);
    }
    writeFileSync(join(dir, 'results', 'gpu.md'), '## GPU check\n\nfrom elsewhere\n');

    expect(await runBenchmarks(['alpha', 'beta'], dir)).toBe(0);
    const first = readFileSync(join(dir, 'RESULTS.md'), 'utf8');
    const [alpha = '', beta, gamma, gpu] = sectionsOf(first);
    expect(alpha).toMatch(MEASURED);
    expect(alpha).toMatch(/^## alpha title\n\n_Measured .*\n\n\| pid \|\n\|---\|\n\| \d+ \|$/);
    expect(beta).toMatch(/^## beta title\n/);
    expect(alpha.match(/\| (\d+) \|$/)?.[1]).not.toBe(String(process.pid)); // measured in a process of its own
    expect(alpha.match(/\| (\d+) \|$/)?.[1]).not.toBe(beta?.match(/\| (\d+) \|$/)?.[1]);
    expect(gamma).toBe(notRun('gamma'));
    expect(gpu).toBe('## GPU check\n\nfrom elsewhere');

    expect(await runBenchmarks(['beta'], dir)).toBe(0);
    const second = sectionsOf(readFileSync(join(dir, 'RESULTS.md'), 'utf8'));
    expect(second[0]).toBe(alpha);
    expect(second[1]).toMatch(/^## beta title\n/);
    expect(second[1]).not.toBe(beta);
    expect(second.slice(2)).toEqual([gamma, gpu]);
    expect(readFileSync(join(dir, 'results', 'beta.md'), 'utf8').trimEnd()).toBe(second[1]);
  }, 60_000);

  it('keeps a failed benchmark\'s section as it was and exits 1', async () => {
    const dir = join(temp, 'failing');
    mkdirSync(join(dir, 'results'), { recursive: true });
    writeFileSync(join(dir, 'broken.bench.ts'), "export async function run(): Promise<string> { throw new Error('no'); }\n");
    writeFileSync(join(dir, 'results', 'broken.md'), '## broken\n\n_Measured earlier._\n');
    expect(await runBenchmarks(['broken'], dir)).toBe(1);
    expect(readFileSync(join(dir, 'results', 'broken.md'), 'utf8')).toBe('## broken\n\n_Measured earlier._\n');
    expect(sectionsOf(readFileSync(join(dir, 'RESULTS.md'), 'utf8'))).toEqual(['## broken\n\n_Measured earlier._']);
    expect(await runBenchmarks(['nothing-matches'], dir)).toBe(1);
  }, 60_000);
});
