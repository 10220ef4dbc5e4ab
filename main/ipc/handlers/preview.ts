/** datasets.preview: the first records as the model will see them (template applied, trained spans marked). */
import { loadTokenizer } from '../../engine/io/tokenizer';
import { readDataset, storedDatasetFile } from '../../engine/train/datasets/normalize';
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
      // What trains: the stored normalized records (the original, normalised with the import's format, for an older import).
      const { format } = library.datasets.get(id);
      const loaded = readDataset(storedDatasetFile(library.datasets.resolveFiles(id)), { format });
      const spansOf = (i: number) => {
        const example = loaded.examples[i];
        if (!example) return [];
        const segments = example.kind === 'chat' ? chatSegments(tokenizer, example.messages) : example.segments;
        return segments.map((s) => ({ text: s.text, trained: s.train }));
      };
      const count = (spans: readonly { text: string }[]) =>
        spans.reduce((n, s) => n + tokenizer.encode(s.text, { addSpecialTokens: false }).length, 0);
      const records: PreviewRecord[] = [];
      for (let i = 0; i < Math.min(limit, loaded.examples.length); i++) {
        const spans = spansOf(i);
        records.push({ index: i, spans, tokenCount: count(spans) });
      }
      const tokenLengths: number[] = [];
      for (let i = 0; i < Math.min(MAX_LENGTHS, loaded.examples.length); i++) tokenLengths.push(count(spansOf(i)));
      const issues = loaded.report.issues.map((issue) => ({ ...issue }));
      return { records, issues, tokenLengths };
    },
  };
}
