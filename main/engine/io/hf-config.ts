/**
 * Hugging Face config.json: reading it and typed field access whose errors name the field and the file.
 * Each architecture (models/gpt2.ts, models/llama.ts) turns the raw object into its ModelConfig.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelIoError } from './errors';

export type RawConfig = Readonly<Record<string, unknown>>;

export function readConfigJson(dir: string): RawConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new ModelIoError('MODEL_NOT_FOUND', `${dir}: no config.json (is this a Hugging Face model folder?)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ModelIoError('INVALID_CONFIG', `${path}: not JSON (${(error as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelIoError('INVALID_CONFIG', `${path}: not a JSON object`);
  return raw as RawConfig;
}

/** Field readers over one config object; `source` names the file in errors. */
export class ConfigFields {
  constructor(
    readonly raw: RawConfig,
    readonly source: string,
  ) {}

  private bad(key: string, expected: string): never {
    throw new ModelIoError('INVALID_CONFIG', `${this.source}: "${key}" must be ${expected}, got ${JSON.stringify(this.raw[key])}`);
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  /** A positive integer; the first of `keys` present wins (GPT-2's n_embd vs hidden_size aliases). */
  int(keys: string | readonly string[], fallback?: number): number {
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      if (!this.has(key)) continue;
      const v = this.raw[key];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) this.bad(key, 'a positive integer');
      return v;
    }
    if (fallback !== undefined) return fallback;
    const names = (typeof keys === 'string' ? [keys] : keys).map((k) => `"${k}"`).join(' or ');
    throw new ModelIoError('INVALID_CONFIG', `${this.source}: missing ${names}`);
  }

  number(key: string, fallback: number): number {
    if (!this.has(key)) return fallback;
    const v = this.raw[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.bad(key, 'a finite number');
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.has(key)) return fallback;
    const v = this.raw[key];
    if (typeof v !== 'boolean') this.bad(key, 'true or false');
    return v;
  }

  string(key: string, fallback: string): string {
    if (!this.has(key)) return fallback;
    const v = this.raw[key];
    if (typeof v !== 'string') this.bad(key, 'a string');
    return v;
  }

  /** A token id or null; Hugging Face allows a list for eos_token_id, handled by `tokenIds`. */
  tokenId(key: string): number | null {
    if (!this.has(key)) return null;
    const v = this.raw[key];
    if (Array.isArray(v)) return typeof v[0] === 'number' ? v[0] : null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.bad(key, 'a non-negative integer');
    return v;
  }

  tokenIds(key: string): number[] {
    if (!this.has(key)) return [];
    const v = this.raw[key];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) this.bad(key, 'a token id or a list of them');
    return list as number[];
  }

  /** Refuses a field whose value we would silently get wrong. */
  unsupported(key: string, isSupported: (value: unknown) => boolean, what: string): void {
    if (!this.has(key)) return;
    if (!isSupported(this.raw[key])) {
      throw new ModelIoError('UNSUPPORTED_MODEL', `${this.source}: "${key}": ${JSON.stringify(this.raw[key])} is not supported (${what})`);
    }
  }
}

/** The model folder's generation_config.json eos ids, which often list more stops than config.json (Llama-3). */
export function readGenerationEosIds(dir: string): number[] {
  const path = join(dir, 'generation_config.json');
  if (!existsSync(path)) return [];
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as { eos_token_id?: unknown };
    const v = raw.eos_token_id;
    const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    return list.filter((x): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0);
  } catch {
    return [];
  }
}
