import type { Migration } from './types';

/**
 * A saved comparison is a whole conversation: each output belongs to one of its prompts (turn 0 is the first
 * user message). Comparisons saved before held one prompt, so their outputs are turn 0.
 */
export const comparisonTurns: Migration = {
  version: 80,
  name: '0080-comparison-turns',
  up(db) {
    db.exec('ALTER TABLE comparison_outputs ADD COLUMN turn INTEGER NOT NULL DEFAULT 0 CHECK (turn >= 0);');
  },
};
