import type { Migration } from './types';

/**
 * Base models that are one GGUF file referenced where it lies (an Ollama blob, an LM Studio download, a file the
 * user found): where it came from, its name there ('qwen2.5:0.5b' in Ollama), its quantization and size. The
 * base_models row keeps storage 'reference' with the file as its path; deleting the row never touches the file.
 */
export const ggufModels: Migration = {
  version: 70,
  name: '0070-gguf-models',
  up(db) {
    db.exec(`
      CREATE TABLE base_model_gguf (
        model_id     TEXT PRIMARY KEY REFERENCES base_models(id) ON DELETE CASCADE,
        origin       TEXT NOT NULL CHECK (origin IN ('ollama', 'lmstudio', 'file')),
        origin_name  TEXT NOT NULL,
        quantization TEXT,
        file_bytes   INTEGER NOT NULL CHECK (file_bytes >= 0)
      ) STRICT;
    `);
  },
};
