/**
 * The command line as a clumsy user runs it: training into a folder that holds files (or into the working
 * directory itself), reducing an adapter into its own folder. Each is refused before anything is written, and
 * what was there is byte for byte what was there before.
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnCli } from '../support/probes/cli';
import { probe } from '../support/probes/record';
import { filesUnder, REPO, tempDir } from '../support/probes/server';

const STARTER = join(REPO, 'resources/starter');
const PEFT = join(REPO, 'test/fixtures/peft-0.21-starter-lora');

let temp: ReturnType<typeof tempDir>;
let data: string;

/** Every file under `dir` with its bytes, to compare before and after. */
function contents(dir: string): Record<string, string> {
  return Object.fromEntries(filesUnder(dir, () => false).map((entry) => {
    const rel = entry.slice(0, entry.lastIndexOf(' '));
    return [rel, readFileSync(join(dir, rel)).toString('base64')];
  }));
}

beforeAll(() => {
  temp = tempDir('probe-cli');
  data = join(temp.dir, 'd.jsonl');
  writeFileSync(data, Array.from({ length: 4 }, (_, i) => JSON.stringify({ prompt: `q${i}`, completion: ` a${i}` })).join('\n') + '\n');
});

afterAll(() => temp.remove());

const train = (out: string, cwd?: string) =>
  spawnCli(['train', STARTER, '--data', data, '--out', out, '--targets', 'q_proj', '--rank', '2', '--max-steps', '1', '--batch-size', '2'], cwd ? { cwd } : {});

describe('nothing the user owns is written over', () => {
  probe('out-not-empty', async () => {
    const out = join(temp.dir, 'my-project');
    mkdirSync(join(out, 'src'), { recursive: true });
    writeFileSync(join(out, 'notes.md'), 'my notes\n');
    writeFileSync(join(out, 'src', 'main.py'), 'print(1)\n');
    const before = contents(out);
    const run = await train(out);
    expect(run.code).toBe(1);
    expect(run.err).toContain('[OUTPUT_NOT_EMPTY]');
    expect(run.err).toContain(`'${out}' is not empty (2 entries)`);
    expect(contents(out)).toEqual(before);
    expect(filesUnder(temp.dir, () => false).some((f) => f.includes('.tmp-'))).toBe(false);
    // An empty folder is fine: the adapter goes into it.
    const empty = join(temp.dir, 'empty');
    mkdirSync(empty);
    const ok = await train(empty);
    expect(ok.code, ok.err).toBe(0);
    expect(Object.keys(contents(empty))).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors']));
  }, 180_000);

  probe('out-dot', async () => {
    const cwd = join(temp.dir, 'working-directory');
    mkdirSync(cwd);
    writeFileSync(join(cwd, 'thesis.tex'), '\\documentclass{article}\n');
    const before = contents(cwd);
    const run = await train('.', cwd);
    expect(run.code).toBe(1);
    expect(run.err).toContain('[OUTPUT_NOT_EMPTY]');
    expect(contents(cwd)).toEqual(before);
  }, 180_000);

  probe('temps-swept', async () => {
    const exportDir = join(temp.dir, 'exports');
    mkdirSync(exportDir);
    const temps = () => readdirSync(exportDir).filter((n) => n.includes('.tmp-'));
    // The merged exporter (and the safetensors writer inside it), killed at its first rename.
    const merge = (crash: boolean) => spawnCli(['merge', STARTER, '--adapter', PEFT, '--out', join(exportDir, 'merged')], crash ? { crashOnRename: exportDir } : {});
    expect((await merge(true)).signal).toBe('SIGKILL');
    expect(temps()).toEqual([expect.stringMatching(/^\.merged\.tmp-\d+-[0-9a-f]{8}$/)]);
    // The adapter writer (and the safetensors writer inside it), killed the same way.
    const crashed = await spawnCli(['train', STARTER, '--data', data, '--out', join(exportDir, 'adapter-2'), '--targets', 'q_proj', '--rank', '2', '--max-steps', '1', '--batch-size', '2'], { crashOnRename: join(exportDir, '.adapter-2') });
    expect(crashed.signal).toBe('SIGKILL');
    // Its write first swept the dead merge's temp; its own is left.
    expect(temps()).toEqual([expect.stringMatching(/^\.adapter-2\.tmp-\d+-[0-9a-f]{8}$/)]);
    // The next write into the folder sweeps what the dead writers left (the names say their process is gone).
    const again = await merge(false);
    expect(again.code, again.err).toBe(0);
    expect(temps()).toEqual([]);
    expect(readdirSync(join(exportDir, 'merged'))).toEqual(expect.arrayContaining(['config.json', 'model.safetensors']));
    expect(readdirSync(join(exportDir, 'merged')).some((n) => n.includes('.tmp-'))).toBe(false);
  }, 300_000);

  probe('exports-not-empty', async () => {
    const out = join(temp.dir, 'exports-here');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine\n');
    const before = contents(out);
    const commands = [
      ['merge', STARTER, '--adapter', PEFT, '--out', out, '--backend', 'cpu'],
      ['gguf', 'merged', STARTER, '--adapter', PEFT, '--out', out, '--backend', 'cpu'],
      ['export-run', STARTER, '--data', data, '--out', out, '--targets', 'q_proj', '--rank', '2', '--max-steps', '1'],
    ];
    for (const args of commands) {
      const run = await spawnCli(args);
      expect(run.code, `${args[0]}: ${run.err}`).toBe(1);
      expect(run.err, args[0]).toContain(out);
      expect(contents(out), args[0]).toEqual(before);
    }
    expect(readdirSync(temp.dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  }, 300_000);

  probe('reduce-into-itself', async () => {
    const adapter = join(temp.dir, 'adapter-a');
    cpSync(PEFT, adapter, { recursive: true });
    const before = contents(adapter);
    const run = await spawnCli(['adapter', 'reduce', adapter, '--rank', '2', '--out', adapter]);
    expect(run.code).toBe(1);
    expect(run.err).toContain('[OUTPUT_NOT_EMPTY]');
    expect(contents(adapter)).toEqual(before);
    const elsewhere = join(temp.dir, 'adapter-a-r2');
    const ok = await spawnCli(['adapter', 'reduce', adapter, '--rank', '2', '--out', elsewhere]);
    expect(ok.code, ok.err).toBe(0);
    expect(JSON.parse(readFileSync(join(elsewhere, 'adapter_config.json'), 'utf8'))).toMatchObject({ r: 2 });
  }, 180_000);
});
