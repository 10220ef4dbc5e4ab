/**
 * `npm run bench`: runs every bench/*.bench.ts in turn (or those named on the command line) and leaves their
 * tables in bench/RESULTS.md. Each benchmark exports `run(): Promise<string>` returning its Markdown section.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

const dir = import.meta.dirname;
const wanted = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.includes(w)))
  .sort();

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
  `Node ${process.version}, ${process.platform}-${process.arch}`;
const sections: string[] = [];
for (const file of files) {
  console.log(`== ${file}`);
  const module = (await import(join(dir, file))) as { run: () => Promise<string> };
  const section = await module.run();
  console.log(section);
  sections.push(section);
}
if (files.length === 0) console.log('no benchmarks matched');
else if (wanted.length === 0) {
  const header = `# Benchmark results\n\nMachine: ${machine}\nDate: ${new Date().toISOString().slice(0, 10)}\n`;
  writeFileSync(join(dir, 'RESULTS.md'), [header, ...sections].join('\n'));
  console.log('wrote bench/RESULTS.md');
}
