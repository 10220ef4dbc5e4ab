/**
 * `lorasmith import-run <result-dir> [--data-dir D] [--adapter-name N] [--json]`: what an exported run's train.py
 * wrote (its output/ folder, or the export folder holding it) becomes a new adapter version in the library, with the
 * base and dataset found by their hashes, the adapter checked against the base first, the curves of the trainer's
 * log history and the machine it ran on; a warning where its library versions differ from those the export pinned
 * (services/run-import.ts, the app's path too).
 */
import { resolve } from 'node:path';
import { resolveDataDir } from '../app/data-dir';
import { FileWork } from '../services/file-work/client';
import { importRunResult } from '../services/run-import';
import { openLibrary } from '../store/index';
import type { CliCommand, CliIo } from './command';
import { flagOption, parseOptions, positional, stringOption } from './options';

export const IMPORT_RUN_USAGE = `lorasmith import-run <result-dir> [--data-dir D] [--adapter-name N] [--json]

  <result-dir>    the output folder train.py wrote (adapter/, trainer_state.json, run_info.json, run.json),
                  or the exported run's folder that holds it
  --data-dir      the library (default: $LORASMITH_HOME, else the app's data folder)
  --adapter-name  the adapter to add the version to (default: <dataset>-<base>); a new one is made on the run's base`;

export const importRunCommand: CliCommand = {
  name: 'import-run',
  summary: 'import a run trained with transformers + PEFT (an exported run) as a new adapter version',
  usage: IMPORT_RUN_USAGE,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const parsed = parseOptions(argv, { 'data-dir': 'string', 'adapter-name': 'string', json: 'flag' });
    const dir = positional(parsed, 'import-run', '<result-dir>', IMPORT_RUN_USAGE);
    const library = openLibrary(resolveDataDir(stringOption(parsed, 'data-dir')));
    const files = new FileWork();
    try {
      const adapterName = stringOption(parsed, 'adapter-name');
      const done = await importRunResult(library, files, resolve(dir), adapterName ? { adapterName } : {});
      if (flagOption(parsed, 'json')) {
        io.out(JSON.stringify({ done: true, adapterName: done.adapterName, versionId: done.version.id, version: done.version.version, runId: done.run.id, steps: done.steps, trainedOn: done.trainedOn, warnings: done.warnings, metrics: done.version.metrics }));
      } else {
        const m = done.version.metrics;
        io.out(`imported as ${done.adapterName} v${done.version.version}: ${done.steps} steps, train loss ${m.trainLoss?.toFixed(4) ?? 'n/a'}, val loss ${m.valLoss?.toFixed(4) ?? 'n/a'}`);
        io.out(`trained on ${done.trainedOn}`);
        for (const warning of done.warnings) io.err(`warning: ${warning}`);
      }
      return 0;
    } finally {
      await files.close();
      library.close();
    }
  },
};
