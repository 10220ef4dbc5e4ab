/** Loss and perplexity of a model (with or without an adapter) on a dataset, with the same masks as training. */
import type { TextTokenizer } from '../io/prompt';
import type { CausalLM } from '../models/types';
import { loadDataset, type DatasetOptions } from './datasets/dataset';
import type { DatasetFileReport } from './datasets/normalize';
import { evaluateRows } from './loop';
import { padIdOf } from './settings';
import { tokenizeExamples, type TokenizeReport } from './tokenize';

export interface EvaluateOptions {
  readonly model: CausalLM;
  readonly tokenizer: TextTokenizer;
  /** Every valid record is evaluated (no split). */
  readonly data: Omit<DatasetOptions, 'valSplit' | 'valPath'>;
  readonly maxSeqLen: number;
  readonly batchSize?: number;
  readonly trainOnPrompt?: boolean;
}

export interface EvaluateResult {
  readonly loss: number;
  readonly perplexity: number;
  /** Target tokens scored. */
  readonly tokens: number;
  readonly examples: number;
  readonly dataset: DatasetFileReport;
  readonly tokenization: TokenizeReport;
}

export async function evaluateDataset(options: EvaluateOptions): Promise<EvaluateResult> {
  const dataset = loadDataset({ ...options.data, valSplit: 0 });
  const tokenized = tokenizeExamples(dataset.train, options.tokenizer, { maxSeqLen: options.maxSeqLen, trainOnPrompt: options.trainOnPrompt });
  const { loss, perplexity, tokens } = await evaluateRows(options.model, tokenized.examples, padIdOf(options.model, options.tokenizer), options.batchSize ?? 4);
  return { loss, perplexity, tokens, examples: tokenized.examples.length, dataset: dataset.files[0] as DatasetFileReport, tokenization: tokenized.report };
}
