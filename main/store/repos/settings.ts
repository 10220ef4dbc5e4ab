/** The app's settings as key -> JSON value. The ipc layer maps keys to the contract's Settings and validates. */
import { StoreError } from '../errors';
import { nowIso } from '../ids';
import { parseJson, stableJson } from '../json';
import type { SettingRow } from '../types';
import type { StoreContext } from './context';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export class SettingsRepo {
  constructor(private readonly ctx: StoreContext) {}

  get(key: string): JsonValue | undefined {
    const row = this.ctx.db.prepare('SELECT value_json FROM settings WHERE key = ?').get(key) as
      Pick<SettingRow, 'value_json'> | undefined;
    return row ? parseJson<JsonValue>(row.value_json) : undefined;
  }

  all(): Record<string, JsonValue> {
    const rows = this.ctx.db.prepare('SELECT key, value_json FROM settings ORDER BY key').all() as SettingRow[];
    return Object.fromEntries(rows.map((r) => [r.key, parseJson<JsonValue>(r.value_json)]));
  }

  set(key: string, value: JsonValue): void {
    if (key.trim() === '') throw new StoreError('INVALID_INPUT', 'a setting key must not be empty');
    this.ctx.db.prepare(`INSERT INTO settings (key, value_json, updated_at) VALUES (?, ?, ?)
      ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json, updated_at = excluded.updated_at`)
      .run(key, stableJson(value), nowIso());
  }

  /** Several keys in one transaction: the settings page saves all or nothing. */
  setMany(values: Record<string, JsonValue>): void {
    this.ctx.db.transaction(() => {
      for (const [key, value] of Object.entries(values)) this.set(key, value);
    })();
  }

  delete(key: string): boolean {
    return this.ctx.db.prepare('DELETE FROM settings WHERE key = ?').run(key).changes > 0;
  }
}
