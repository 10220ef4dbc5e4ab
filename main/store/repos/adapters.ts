/** Adapters: a named line of versions trained on one base model (the versions live in versions.ts). */
import type { Adapter } from '../../../preload/contract/domain';
import { StoreError, notFound } from '../errors';
import { removeAtomic } from '../files';
import { newId, nowIso } from '../ids';
import { layout } from '../paths';
import type { AdapterRow } from '../types';
import type { StoreContext } from './context';

function toAdapter(row: AdapterRow): Adapter {
  return { id: row.id, name: row.name, baseModelId: row.base_model_id, createdAt: row.created_at };
}

export class AdaptersRepo {
  constructor(private readonly ctx: StoreContext) {}

  list(): Adapter[] {
    return (this.ctx.db.prepare('SELECT * FROM adapters ORDER BY created_at, id').all() as AdapterRow[]).map(toAdapter);
  }

  find(id: string): Adapter | null {
    const row = this.ctx.db.prepare('SELECT * FROM adapters WHERE id = ?').get(id) as AdapterRow | undefined;
    return row ? toAdapter(row) : null;
  }

  get(id: string): Adapter {
    const found = this.find(id);
    if (!found) throw notFound('adapter', id);
    return found;
  }

  findByName(name: string): Adapter | null {
    const row = this.ctx.db.prepare('SELECT * FROM adapters WHERE name = ?').get(name) as AdapterRow | undefined;
    return row ? toAdapter(row) : null;
  }

  create(input: { name: string; baseModelId: string }): Adapter {
    const name = input.name.trim();
    if (name === '') throw new StoreError('INVALID_INPUT', 'an adapter name must not be empty');
    if (!this.ctx.db.prepare('SELECT 1 FROM base_models WHERE id = ?').get(input.baseModelId)) {
      throw notFound('base model', input.baseModelId);
    }
    if (this.findByName(name)) {
      throw new StoreError('ALREADY_EXISTS', `an adapter named '${name}' exists already; choose another name`);
    }
    const row: AdapterRow = { id: newId('ada'), name, base_model_id: input.baseModelId, created_at: nowIso() };
    this.ctx.db.prepare('INSERT INTO adapters VALUES (@id, @name, @base_model_id, @created_at)').run(row);
    return toAdapter(row);
  }

  rename(id: string, name: string): Adapter {
    const trimmed = name.trim();
    if (trimmed === '') throw new StoreError('INVALID_INPUT', 'an adapter name must not be empty');
    const other = this.findByName(trimmed);
    if (other && other.id !== id) {
      throw new StoreError('ALREADY_EXISTS', `an adapter named '${trimmed}' exists already; choose another name`);
    }
    if (this.ctx.db.prepare('UPDATE adapters SET name = ? WHERE id = ?').run(trimmed, id).changes === 0) {
      throw notFound('adapter', id);
    }
    return this.get(id);
  }

  /**
   * Deletes the adapter, its versions, runs and metrics (one transaction; foreign keys cascade), then its
   * folders. Refused while one of its runs is running.
   */
  delete(id: string): void {
    this.get(id);
    const runIds = (this.ctx.db.prepare('SELECT id, status FROM training_runs WHERE adapter_id = ?').all(id) as
      { id: string; status: string }[]);
    const running = runIds.find((r) => r.status === 'running');
    if (running) {
      throw new StoreError('IN_USE', `adapter ${id} is training (run ${running.id}); cancel the run first`);
    }
    this.ctx.db.transaction(() => {
      // Versions of other adapters continued from these keep their parent_label; the link itself goes.
      this.ctx.db.prepare('DELETE FROM training_runs WHERE adapter_id = ?').run(id);
      this.ctx.db.prepare('DELETE FROM adapter_versions WHERE adapter_id = ?').run(id);
      this.ctx.db.prepare('DELETE FROM adapters WHERE id = ?').run(id);
    })();
    removeAtomic(this.ctx.dataDir.resolve(layout.adapterDir(id)));
    for (const run of runIds) removeAtomic(this.ctx.dataDir.resolve(layout.runDir(run.id)));
  }
}
