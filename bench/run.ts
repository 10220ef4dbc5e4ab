/**
 * `npm run bench [-- NAME ...]`: runs every bench/*.bench.ts (or those whose file name contains a NAME), each in a
 * child process of its own so that its timings and peak memory are its own. A benchmark's module exports
 * `run(): Promise<string>` returning its Markdown section; the child writes it to bench/results/<name>.md under a
 * line saying when, where and under what load it was measured. bench/RESULTS.md is then assembled from the
 * section files (a benchmark with none is said not to have run), so a partial run updates its own sections and
 * keeps the others, and nothing in either is typed by hand. LORASMITH_BENCH_QUICK=1 runs every
 * benchmark at reduced shapes (bench/quick.ts: a correctness check) and writes nothing. `npm run bench -- --assemble`
 * only assembles (after a section came from elsewhere, such as the GPU check's gpu.md).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = import.meta.dirname;
/** The TypeScript loader every benchmark's child starts with (as `npm run bench` starts this file). */
const registerTs = pathToFileURL(join(dir, '..', 'bin', 'register-ts.js')).href;

export function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
    `Node ${process.version}, ${process.platform}-${process.arch}`;
}

function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** In the child: run one benchmark file (its path) and write its section to results/ beside it. */
async function runOne(path: string): Promise<void> {
  const name = basename(path, '.bench.ts');
  const started = new Date();
  const module = (await import(pathToFileURL(path).href)) as { run: () => Promise<string> };
  const section = (await module.run()).trimEnd();
  const [heading = '', ...body] = section.split('\n');
  if (process.env.LORASMITH_BENCH_QUICK === '1') {
    console.log(`${section}\n\n(LORASMITH_BENCH_QUICK=1: reduced shapes, nothing written)`);
    return;
  }
  const measured = `_Measured ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine()}; ` +
    `load average at the end ${loadavg().map((l) => l.toFixed(1)).join(', ')} (the cores may have been shared: compare rows of one section, not sections)._`;
  const resultsDir = join(dirname(path), 'results');
  mkdirSync(resultsDir, { recursive: true });
  writeAtomically(join(resultsDir, `${name}.md`), [heading, '', measured, ...body, ''].join('\n'));
  console.log(section);
}

/** The benchmarks' names: bench/<name>.bench.ts, in name order. */
export function benchNames(benchDir = dir): string[] {
  return readdirSync(benchDir).filter((f) => f.endsWith('.bench.ts')).map((f) => basename(f, '.bench.ts')).sort();
}

/** What RESULTS.md says for a benchmark that has written no section yet. */
export function notRunSection(name: string): string {
  return `## ${name}\n\n_Not run yet: bench/${name}.bench.ts has written no section here (\`npm run bench -- ${name}\` measures it)._`;
}

/**
 * RESULTS.md's text from `benchDir`: a fixed header, then each benchmark's section (results/<name>.md) or the line
 * saying it has not run, then any other section in results/ (gpu.md, written from the GPU check's report), all in
 * name order. Nothing depends on when it is assembled, so the file can be checked against its sections.
 */
export function resultsText(benchDir = dir): string {
  const from = join(benchDir, 'results');
  const written = existsSync(from) ? readdirSync(from).filter((f) => f.endsWith('.md')).map((f) => basename(f, '.md')) : [];
  const names = benchNames(benchDir);
  const sections = [
    ...names.map((name) => (written.includes(name) ? readFileSync(join(from, `${name}.md`), 'utf8').trimEnd() : notRunSection(name))),
    ...written.filter((name) => !names.includes(name)).sort().map((name) => readFileSync(join(from, `${name}.md`), 'utf8').trimEnd()),
  ];
  const header = ['# Benchmark results', '',
    'Assembled by `npm run bench` from bench/results/*.md: one section per benchmark, each written by the benchmark and',
    'saying when, on what machine and under what load it was measured. `npm run bench -- NAME` rewrites the matching',
    "sections and keeps the others. Compare rows within a section: sections may come from different runs.", ''];
  return [...header, sections.join('\n\n'), ''].join('\n');
}

/** Writes RESULTS.md in `benchDir` from its sections. */
export function assembleResults(benchDir = dir): void {
  writeAtomically(join(benchDir, 'RESULTS.md'), resultsText(benchDir));
}

/**
 * Runs the benchmarks of `benchDir` whose file name contains one of `words` (all without words), each in a child
 * process, then assembles RESULTS.md. Returns the exit code: 1 when one failed or none matched.
 */
export async function runBenchmarks(words: readonly string[], benchDir = dir): Promise<number> {
  const files = readdirSync(benchDir)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => words.length === 0 || words.some((w) => f.includes(w)))
    .sort();
  if (files.length === 0) {
    console.log(`no benchmarks matched ${words.join(', ')}`);
    return 1;
  }
  let failed = 0;
  for (const file of files) {
    console.log(`== ${file}`);
    const child = spawnSync(process.execPath, ['--import', registerTs, join(dir, 'run.ts'), '--one', join(benchDir, file)], { stdio: 'inherit' });
    if (child.status !== 0) {
      failed++;
      console.error(`${file} failed (exit ${child.status ?? child.signal}); its section in bench/results is unchanged`);
    }
  }
  if (process.env.LORASMITH_BENCH_QUICK !== '1') {
    assembleResults(benchDir);
    console.log(`wrote ${join(benchDir, 'RESULTS.md')}`);
  }
  return failed > 0 ? 1 : 0;
}

if (process.argv[1] && basename(process.argv[1]) === 'run.ts') {
  const [first, path] = process.argv.slice(2);
  if (first === '--one' && path) await runOne(path);
  else if (first === '--assemble') assembleResults();
  else process.exitCode = await runBenchmarks(process.argv.slice(2));
}
