import type { Migration } from './types';

/**
 * Base models, datasets, adapters with their versions (lineage), training runs and their metric series.
 * Paths are relative to the data directory (base models imported by reference excepted: those are absolute and
 * stay where the user keeps them). Hashes are 'sha256:<hex>'. Times are ISO-8601 UTC text.
 * A version records the base and dataset hashes it was trained from, so its lineage survives their re-import.
 */
export const initial: Migration = {
  version: 10,
  name: '0010-initial',
  up(db) {
    db.exec(`
      CREATE TABLE base_models (
        id              TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        architecture    TEXT NOT NULL,
        source_kind     TEXT NOT NULL CHECK (source_kind IN ('folder', 'hub', 'starter')),
        source_ref      TEXT NOT NULL,
        source_revision TEXT,
        storage         TEXT NOT NULL CHECK (storage IN ('copy', 'reference')),
        path            TEXT NOT NULL,
        parameter_count INTEGER NOT NULL CHECK (parameter_count >= 0),
        content_hash    TEXT NOT NULL,
        files_json      TEXT NOT NULL,
        added_at        TEXT NOT NULL,
        status          TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'missing'))
      ) STRICT;

      CREATE TABLE datasets (
        id               TEXT PRIMARY KEY,
        name             TEXT NOT NULL,
        original_name    TEXT NOT NULL,
        original_file    TEXT NOT NULL,
        original_bytes   INTEGER NOT NULL,
        normalized_file  TEXT,
        normalized_bytes INTEGER,
        format           TEXT NOT NULL
                         CHECK (format IN ('prompt-completion', 'alpaca', 'messages', 'sharegpt', 'text')),
        record_count     INTEGER NOT NULL DEFAULT 0 CHECK (record_count >= 0),
        skipped_count    INTEGER NOT NULL DEFAULT 0 CHECK (skipped_count >= 0),
        token_total      INTEGER,
        token_min        INTEGER,
        token_max        INTEGER,
        token_mean       REAL,
        tokenizer_hash   TEXT,
        hash             TEXT NOT NULL,
        added_at         TEXT NOT NULL,
        status           TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'missing'))
      ) STRICT;

      CREATE TABLE adapters (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        base_model_id TEXT NOT NULL REFERENCES base_models(id) ON DELETE RESTRICT,
        created_at    TEXT NOT NULL
      ) STRICT;

      CREATE TABLE adapter_versions (
        id                TEXT PRIMARY KEY,
        adapter_id        TEXT NOT NULL REFERENCES adapters(id) ON DELETE CASCADE,
        version           INTEGER NOT NULL CHECK (version >= 1),
        origin            TEXT NOT NULL CHECK (origin IN ('trained', 'imported')),
        parent_version_id TEXT REFERENCES adapter_versions(id) ON DELETE SET NULL,
        parent_label      TEXT,
        dataset_id        TEXT REFERENCES datasets(id) ON DELETE RESTRICT,
        base_model_hash   TEXT NOT NULL,
        dataset_hash      TEXT,
        settings_json     TEXT,
        train_loss        REAL,
        val_loss          REAL,
        steps             INTEGER,
        path              TEXT NOT NULL,
        files_json        TEXT NOT NULL,
        status            TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'missing')),
        created_at        TEXT NOT NULL,
        UNIQUE (adapter_id, version)
      ) STRICT;
      CREATE INDEX adapter_versions_parent ON adapter_versions(parent_version_id);
      CREATE INDEX adapter_versions_dataset ON adapter_versions(dataset_id);

      CREATE TABLE training_runs (
        id                 TEXT PRIMARY KEY,
        adapter_id         TEXT NOT NULL REFERENCES adapters(id) ON DELETE CASCADE,
        base_model_id      TEXT NOT NULL REFERENCES base_models(id) ON DELETE RESTRICT,
        dataset_id         TEXT NOT NULL REFERENCES datasets(id) ON DELETE RESTRICT,
        parent_version_id  TEXT REFERENCES adapter_versions(id) ON DELETE SET NULL,
        adapter_version_id TEXT REFERENCES adapter_versions(id) ON DELETE SET NULL,
        settings_json      TEXT NOT NULL,
        status             TEXT NOT NULL
                           CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
        created_at         TEXT NOT NULL,
        started_at         TEXT,
        finished_at        TEXT,
        error              TEXT,
        last_checkpoint    TEXT
      ) STRICT;
      CREATE INDEX training_runs_adapter ON training_runs(adapter_id);
      CREATE INDEX training_runs_version ON training_runs(adapter_version_id);
      CREATE INDEX training_runs_status ON training_runs(status);

      CREATE TABLE run_metrics (
        run_id            TEXT NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
        step              INTEGER NOT NULL CHECK (step >= 0),
        loss              REAL,
        val_loss          REAL,
        lr                REAL,
        tokens_per_second REAL,
        PRIMARY KEY (run_id, step)
      ) STRICT, WITHOUT ROWID;
    `);
  },
};
