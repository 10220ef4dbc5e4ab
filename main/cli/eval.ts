/** `lorasmith eval <model-dir> [--adapter DIR] --data FILE [--json]`: loss, perplexity and tokens on a dataset. */
import { resolve } from 'node:path';
import { UsageError, type CliCommand, type CliIo } from './command';
import { attachAdapterWeights, removeAdapter } from '../engine/lora/inject';
import { loadAdapter } from '../engine/lora/peft-io';
import { evaluateDataset } from '../engine/train/evaluate';
import { numberOption, parseArgs, parseFormat, type ModelLoader } from './train';
import { loadForTraining } from '../engine/train/load';
import { nativeOptionsFromEnv } from '../engine/backend/native/index';

export const EVAL_USAGE = `lorasmith eval <model-dir> [--adapter DIR] --data FILE [--format F] [--max-seq-len T] [--batch-size B]
  [--train-on-all] [--backend B] [--json]

  Scores the same tokens training would (completions / assistant turns; all tokens with --train-on-all).`;

export function makeEvalCommand(loadModel: ModelLoader): CliCommand {
  return {
    name: 'eval',
    summary: 'measure loss and perplexity of a model, with or without an adapter, on a dataset',
    usage: EVAL_USAGE,
    async run(argv: readonly string[], io: CliIo): Promise<number> {
      const args = parseArgs(argv, ['adapter', 'data', 'format', 'max-seq-len', 'batch-size', 'backend'], ['json', 'train-on-all']);
      const [modelDir, ...extra] = args.positional;
      if (!modelDir || extra.length > 0) throw new UsageError(`eval needs exactly one <model-dir>\nUsage: ${EVAL_USAGE}`);
      const data = args.values.get('data');
      if (!data) throw new UsageError('--data FILE is required');
      const adapterDir = args.values.get('adapter');
      const { model, tokenizer, backend } = await loadModel(resolve(modelDir), { trainable: false, backend: args.values.get('backend') });
      try {
        if (adapterDir) {
          const adapter = loadAdapter(resolve(adapterDir));
          attachAdapterWeights(model, 'eval', adapter.config, adapter.modules);
        }
        const result = evaluateDataset({
          model, tokenizer,
          data: { path: resolve(data), format: parseFormat(args.values.get('format')) },
          maxSeqLen: numberOption(args, 'max-seq-len', 'int') ?? 512,
          batchSize: numberOption(args, 'batch-size', 'int') ?? 4,
          trainOnAll: args.flags.has('train-on-all'),
        });
        if (adapterDir) removeAdapter(model, 'eval');
        const summary = { done: true, loss: result.loss, perplexity: result.perplexity, tokens: result.tokens, examples: result.examples, skipped: result.dataset.skipped + result.tokenization.skipped.length, adapter: adapterDir ? resolve(adapterDir) : null, backend };
        if (args.flags.has('json')) io.out(JSON.stringify(summary));
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

export const evalCommand: CliCommand = makeEvalCommand((dir, options) =>
  loadForTraining(dir, { ...options, native: nativeOptionsFromEnv(process.env) }));
