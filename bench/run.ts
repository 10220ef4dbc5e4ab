/**
 * `npm run bench [-- NAME ...]`: runs every bench/*.bench.ts (or those whose file name contains a NAME), each in a
 * child process of its own so that its timings and peak memory are its own. A benchmark's module exports
 * `run(): Promise<string>` returning its Markdown section; the child writes it to bench/results/<name>.md under a
 * line saying when, where and under what load it was measured. bench/RESULTS.md is then assembled from every
 * section file (the machine, the date, then the sections in name order), so a partial run updates its own
 * sections and the assembled file, and nothing in either is typed by hand. LORASMITH_BENCH_QUICK=1 asks the
 * benchmarks that know it for reduced shapes (a correctness check) and writes nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { basename, join } from 'node:path';

const dir = import.meta.dirname;
const resultsDir = join(dir, 'results');

export function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
    `Node ${process.version}, ${process.platform}-${process.arch}`;
}

function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** In the child: run one benchmark file and write its section. */
async function runOne(file: string): Promise<void> {
  const name = basename(file, '.bench.ts');
  const started = new Date();
  const module = (await import(join(dir, file))) as { run: () => Promise<string> };
  const section = (await module.run()).trimEnd();
  const [heading = '', ...body] = section.split('\n');
  if (process.env.LORASMITH_BENCH_QUICK === '1') {
    console.log(`${section}\n\n(LORASMITH_BENCH_QUICK=1: reduced shapes, nothing written)`);
    return;
  }
  const measured = `_Measured ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine()}; ` +
    `load average at the end ${loadavg().map((l) => l.toFixed(1)).join(', ')} (the cores may have been shared: compare rows of one section, not sections)._`;
  mkdirSync(resultsDir, { recursive: true });
  writeAtomically(join(resultsDir, `${name}.md`), [heading, '', measured, ...body, ''].join('\n'));
  console.log(section);
}

/** RESULTS.md in `benchDir` from every section file in its results/: the machine and the date, then the sections in name order. */
export function assembleResults(benchDir = dir): void {
  const from = join(benchDir, 'results');
  if (!existsSync(from)) return;
  const files = readdirSync(from).filter((f) => f.endsWith('.md')).sort();
  const sections = files.map((f) => readFileSync(join(from, f), 'utf8').trimEnd());
  const header = ['# Benchmark results', '',
    `Machine: ${machine()}`,
    `Assembled ${new Date().toISOString().slice(0, 10)} by \`npm run bench\` from bench/results/*.md; each section says when it was measured.`, ''];
  writeAtomically(join(benchDir, 'RESULTS.md'), [...header, sections.join('\n\n'), ''].join('\n'));
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === '--one') {
    await runOne(argv[1] as string);
    return 0;
  }
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => argv.length === 0 || argv.some((w) => f.includes(w)))
    .sort();
  if (files.length === 0) {
    console.log(`no benchmarks matched ${argv.join(', ')}`);
    return 1;
  }
  let failed = 0;
  for (const file of files) {
    console.log(`== ${file}`);
    const child = spawnSync(process.execPath, [...process.execArgv, join(dir, 'run.ts'), '--one', file], { stdio: 'inherit' });
    if (child.status !== 0) {
      failed++;
      console.error(`${file} failed (exit ${child.status ?? child.signal}); its section in bench/results is unchanged`);
    }
  }
  if (process.env.LORASMITH_BENCH_QUICK !== '1') {
    assembleResults();
    console.log('wrote bench/RESULTS.md');
  }
  return failed > 0 ? 1 : 0;
}

if (process.argv[1] && basename(process.argv[1]) === 'run.ts') process.exitCode = await main(process.argv.slice(2));
