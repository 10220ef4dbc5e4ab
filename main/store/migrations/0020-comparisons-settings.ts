import type { Migration } from './types';

/**
 * Chat comparisons the user saved (one prompt, the outputs of several adapter mixes side by side) and the
 * app's settings as key -> JSON value.
 */
export const comparisonsSettings: Migration = {
  version: 20,
  name: '0020-comparisons-settings',
  up(db) {
    db.exec(`
      CREATE TABLE comparisons (
        id            TEXT PRIMARY KEY,
        title         TEXT NOT NULL,
        base_model_id TEXT REFERENCES base_models(id) ON DELETE SET NULL,
        messages_json TEXT NOT NULL,
        sampling_json TEXT NOT NULL,
        created_at    TEXT NOT NULL
      ) STRICT;

      CREATE TABLE comparison_outputs (
        comparison_id     TEXT NOT NULL REFERENCES comparisons(id) ON DELETE CASCADE,
        position          INTEGER NOT NULL CHECK (position >= 0),
        label             TEXT NOT NULL,
        mix_json          TEXT NOT NULL,
        text              TEXT NOT NULL,
        tokens            INTEGER NOT NULL CHECK (tokens >= 0),
        tokens_per_second REAL,
        PRIMARY KEY (comparison_id, position)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE settings (
        key        TEXT PRIMARY KEY,
        value_json TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;
    `);
  },
};
