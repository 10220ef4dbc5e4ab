/** datasets.preview: the first records as the model will see them (template applied, trained spans marked). */
import { loadTokenizer } from '../../engine/io/tokenizer';
import { loadDataset } from '../../engine/train/datasets/dataset';
import { chatSegments } from '../../engine/train/tokenize';
import type { PreviewRecord } from '../../../preload/contract';
import type { HandlerContext } from '../context';
import type { Handlers } from '../types';

const MAX_LENGTHS = 5000;

export function previewHandlers(ctx: HandlerContext): Pick<Handlers, 'datasets.preview'> {
  const { library } = ctx;
  return {
    'datasets.preview': async ({ id, modelId, limit }) => {
      const tokenizer = await loadTokenizer(library.models.resolvePath(modelId));
      const loaded = loadDataset({ path: library.datasets.resolveFiles(id).original });
      const spansOf = (i: number) => {
        const example = loaded.train[i];
        if (!example) return [];
        const segments = example.kind === 'chat' ? chatSegments(tokenizer, example.messages) : example.segments;
        return segments.map((s) => ({ text: s.text, trained: s.train }));
      };
      const count = (spans: readonly { text: string }[]) =>
        spans.reduce((n, s) => n + tokenizer.encode(s.text, { addSpecialTokens: false }).length, 0);
      const records: PreviewRecord[] = [];
      for (let i = 0; i < Math.min(limit, loaded.train.length); i++) {
        const spans = spansOf(i);
        records.push({ index: i, spans, tokenCount: count(spans) });
      }
      const tokenLengths: number[] = [];
      for (let i = 0; i < Math.min(MAX_LENGTHS, loaded.train.length); i++) tokenLengths.push(count(spansOf(i)));
      const issues = loaded.files.flatMap((f) => f.issues).map((issue) => ({ ...issue }));
      return { records, issues, tokenLengths };
    },
  };
}
