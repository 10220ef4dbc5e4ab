/**
 * `lorasmith adapter check|analyze|reduce`: the adapter tools on PEFT folders, without loading model weights.
 *   check <adapter-dir> <model-dir>            the preflight report (exit 1 when something does not fit)
 *   analyze <adapter-dir> [--model DIR] [--json]  per module: singular values of ΔW, effective rank, ‖ΔW‖/‖W0‖
 *   reduce <adapter-dir> --rank R --out DIR     truncated-SVD rank reduction, written as a PEFT adapter
 */
import { resolve } from 'node:path';
import { UsageError, type CliCommand, type CliIo } from './command';
import { formatAnalysis } from '../engine/adapters/analyze';
import { describeBaseDir } from '../engine/adapters/describe-base';
import { analyzeAdapterDir, reduceAdapterDir } from '../engine/adapters/folder-tools';
import { formatPreflight, preflightAdapter } from '../engine/adapters/preflight';
import { flagOption, numberOption, parseOptions, positional, positionals, runSubcommand, stringOption } from './options';

export const ADAPTER_USAGE = `lorasmith adapter <check|analyze|reduce> ...
  lorasmith adapter check <adapter-dir> <model-dir> [--json]
      Checks a PEFT adapter against a base before loading: a one-line verdict (what it was made for, whether it
      fits this base), then architecture, module paths, shapes, ranks and features not supported (DoRA,
      modules_to_save, embeddings, non-CAUSAL_LM tasks), one line per module kind. Exit 1 if it does not fit.
  lorasmith adapter analyze <adapter-dir> [--model DIR] [--json]
      Per module: singular values of ΔW = (alpha/r)·B·A, numerical and effective rank, the rank keeping 99%
      of ‖ΔW‖², and with --model the size ‖ΔW‖_F / ‖W0‖_F.
  lorasmith adapter reduce <adapter-dir> --rank R --out DIR [--json]
      The best rank-R approximation of each ΔW (truncated SVD) as a new PEFT adapter, with its relative error.`;

function check(argv: readonly string[], io: CliIo): number {
  const args = parseOptions(argv, { json: 'flag' });
  const [adapterDir, modelDir] = positionals(args, 'adapter check', ['<adapter-dir>', '<model-dir>'], ADAPTER_USAGE).map((p) => resolve(p)) as [string, string];
  const report = preflightAdapter(adapterDir, describeBaseDir(modelDir));
  io.out(flagOption(args, 'json') ? JSON.stringify(report) : formatPreflight(report));
  return report.ok ? 0 : 1;
}

function analyze(argv: readonly string[], io: CliIo): number {
  const args = parseOptions(argv, { model: 'string', json: 'flag' });
  const adapterDir = resolve(positional(args, 'adapter analyze', '<adapter-dir>', ADAPTER_USAGE));
  const modelDir = stringOption(args, 'model');
  const analysis = analyzeAdapterDir(adapterDir, modelDir === undefined ? null : resolve(modelDir));
  io.out(flagOption(args, 'json') ? JSON.stringify(analysis) : formatAnalysis(analysis));
  return 0;
}

function reduce(argv: readonly string[], io: CliIo): number {
  const args = parseOptions(argv, { rank: 'string', out: 'string', json: 'flag' });
  const adapterDir = resolve(positional(args, 'adapter reduce', '<adapter-dir>', ADAPTER_USAGE));
  const rank = numberOption(args, 'rank', 'int');
  if (rank === undefined) throw new UsageError('--rank R is required');
  if (rank <= 0) throw new UsageError(`--rank must be a positive integer, got ${rank}`);
  const out = stringOption(args, 'out');
  if (!out) throw new UsageError('--out DIR is required');
  const report = reduceAdapterDir(adapterDir, rank, resolve(out));
  if (flagOption(args, 'json')) io.out(JSON.stringify({ out: resolve(out), ...report }));
  else {
    const worst = report.modules.reduce((a, m) => (m.relativeError > a.relativeError ? m : a), report.modules[0] as (typeof report.modules)[number]);
    io.out(`wrote ${resolve(out)}: ${report.modules.length} module(s) at rank ≤ ${rank}`);
    io.out(`relative error ‖ΔW − ΔW_r‖/‖ΔW‖: overall ${report.overallRelativeError.toFixed(4)}, worst ${worst.relativeError.toFixed(4)} (${worst.path})`);
  }
  return 0;
}

export function makeAdapterCommand(): CliCommand {
  return {
    name: 'adapter',
    summary: 'check an adapter against a base, analyze its rank, or reduce its rank',
    usage: ADAPTER_USAGE,
    async run(argv: readonly string[], io: CliIo): Promise<number> {
      return runSubcommand('adapter', ADAPTER_USAGE, argv, {
        check: (rest) => check(rest, io),
        analyze: (rest) => analyze(rest, io),
        reduce: (rest) => reduce(rest, io),
      });
    },
  };
}
