/** `lorasmith eval <model-dir> [--adapter DIR] --data FILE [--json]`: loss, perplexity and tokens on a dataset. */
import { resolve } from 'node:path';
import { UsageError, type CliCommand, type CliIo } from './command';
import { attachAdapterWeights, removeAdapter } from '../engine/lora/inject';
import { loadAdapter } from '../engine/lora/peft-io';
import { evaluateDataset } from '../engine/train/evaluate';
import { DEFAULT_TRAIN_SETTINGS } from '../engine/train/settings';
import { parseFormat } from './train';
import { loadModelFolder, type ModelFolderLoader } from './load-model';
import { flagOption, numberOption, parseOptions, positional, stringOption } from './options';

export const EVAL_USAGE = `lorasmith eval <model-dir> [--adapter DIR] --data FILE [--format F] [--max-seq-len T] [--batch-size B]
  [--train-on-prompt] [--backend B] [--json]

  Scores the same tokens training would (completions / assistant turns; all tokens with --train-on-prompt).`;

export function makeEvalCommand(loadModel: ModelFolderLoader = loadModelFolder): CliCommand {
  return {
    name: 'eval',
    summary: 'measure loss and perplexity of a model, with or without an adapter, on a dataset',
    usage: EVAL_USAGE,
    async run(argv: readonly string[], io: CliIo): Promise<number> {
      const args = parseOptions(argv, {
        adapter: 'string', data: 'string', format: 'string', 'max-seq-len': 'string', 'batch-size': 'string', backend: 'string',
        json: 'flag', 'train-on-prompt': 'flag',
      });
      const modelDir = positional(args, 'eval', '<model-dir>', EVAL_USAGE);
      const data = stringOption(args, 'data');
      if (!data) throw new UsageError('--data FILE is required');
      const adapterDir = stringOption(args, 'adapter');
      const { model, tokenizer, backend } = await loadModel(resolve(modelDir), { trainable: false, backend: stringOption(args, 'backend') });
      try {
        if (adapterDir) {
          const adapter = loadAdapter(resolve(adapterDir));
          attachAdapterWeights(model, 'eval', adapter.config, adapter.modules);
        }
        const result = await evaluateDataset({
          model, tokenizer,
          data: { path: resolve(data), format: parseFormat(stringOption(args, 'format')) },
          maxSeqLen: numberOption(args, 'max-seq-len', 'int') ?? DEFAULT_TRAIN_SETTINGS.maxSeqLen,
          batchSize: numberOption(args, 'batch-size', 'int') ?? 4,
          trainOnPrompt: flagOption(args, 'train-on-prompt'),
        });
        if (adapterDir) removeAdapter(model, 'eval');
        const summary = { done: true, loss: result.loss, perplexity: result.perplexity, tokens: result.tokens, examples: result.examples, skipped: result.dataset.skipped + result.tokenization.skipped.length, adapter: adapterDir ? resolve(adapterDir) : null, backend };
        if (flagOption(args, 'json')) io.out(JSON.stringify(summary));
        else {
          io.out(`loss ${result.loss.toFixed(4)}  perplexity ${result.perplexity.toFixed(3)}  over ${result.tokens} tokens of ${result.examples} examples (${backend})`);
          for (const issue of result.dataset.issues.slice(0, 20)) io.err(`  skipped line ${issue.line}: ${issue.message}`);
        }
        return 0;
      } finally {
        model.dispose();
      }
    },
  };
}

export const evalCommand: CliCommand = makeEvalCommand();
