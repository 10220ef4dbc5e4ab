/**
 * `lorasmith inspect <model-dir> [--json]`: architecture, parameter count, layers, every linear module with
 * its sizes, and the LoRA target groups (attention, mlp, all-linear), read from config.json and the
 * safetensors headers without loading the weights.
 */
import { resolve } from 'node:path';
import type { CliCommand, CliIo } from './command';
import { inspectModel, type ModelSummary } from '../engine/models/inspect';
import { flagOption, parseOptions, positional } from './options';

export const INSPECT_USAGE = `lorasmith inspect <model-dir> [--json]

  Prints the model's architecture, sizes, parameter count, its linear modules (in -> out) and the module
  groups LoRA can target. --json prints one JSON object instead.`;

function millions(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : `${(n / 1e6).toFixed(2)}M`;
}

export function formatSummary(s: ModelSummary): string {
  const c = s.config;
  const lines = [
    `${s.dir}`,
    `  architecture   ${c.modelType}${s.architectures.length ? ` (${s.architectures.join(', ')})` : ''}`,
    `  parameters     ${s.parameterCount.toLocaleString('en-US')} (${millions(s.parameterCount)}), ${s.parameterSource === 'config' ? 'from config.json (no weights in the folder)' : `stored as ${Object.entries(s.dtypes).map(([d, n]) => `${d}×${n}`).join(', ')}`}`,
    `  layers         ${c.numLayers}, hidden ${c.hiddenSize}, heads ${c.numHeads} (kv ${c.numKvHeads}, dim ${c.headDim}), mlp ${c.intermediateSize}`,
    `  vocabulary     ${c.vocabSize}, context ${c.maxPositions}, head ${c.tieWordEmbeddings ? 'tied to the embedding' : 'untied'}`,
    `  tokens         bos ${c.bosTokenId ?? '-'}, eos ${c.eosTokenIds.join('/') || '-'}, pad ${c.padTokenId ?? '-'}`,
    `  tokenizer      ${s.hasTokenizer ? `tokenizer.json${s.hasChatTemplate ? ', chat template' : ', no chat template'}` : 'none (tokenizer.json missing)'}`,
    '',
    'LoRA target groups:',
    ...s.targetGroups.map((g) => `  ${g.group.padEnd(11)} ${g.moduleNames.join(', ')} (${g.modules} modules, ${millions(g.weights)} frozen weights)`),
    '',
    'Linear modules (in -> out):',
    ...s.linears.map((l) => `  ${l.path.padEnd(40)} ${String(l.inFeatures).padStart(6)} -> ${String(l.outFeatures).padEnd(6)} ${l.groups.join(',') || '(output head)'}`),
  ];
  return lines.join('\n');
}

export function makeInspectCommand(): CliCommand {
  return {
    name: 'inspect',
    summary: "show a model's architecture, parameter count, linear modules and LoRA target groups",
    usage: INSPECT_USAGE,
    async run(argv: readonly string[], io: CliIo): Promise<number> {
      const args = parseOptions(argv, { json: 'flag' });
      const dir = positional(args, 'inspect', '<model-dir>', INSPECT_USAGE);
      const summary = inspectModel(resolve(dir));
      io.out(flagOption(args, 'json') ? JSON.stringify(summary, null, 2) : formatSummary(summary));
      return 0;
    },
  };
}
