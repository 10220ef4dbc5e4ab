import { randomBytes } from 'node:crypto';

/**
 * A readable, unique id: a kind prefix, the UTC date and 12 random base32 characters (60 bits), e.g.
 * `ver_20261128_k3q9x0m2ab7c`. The date makes ids sort roughly by creation and tell their age at a glance.
 */
export function newId(prefix: 'mdl' | 'ds' | 'ada' | 'ver' | 'run' | 'cmp'): string {
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
  const bytes = randomBytes(12);
  let tail = '';
  for (const byte of bytes) tail += alphabet[byte & 31];
  const date = new Date().toISOString().slice(0, 10).replaceAll('-', '');
  return `${prefix}_${date}_${tail}`;
}

/** ISO-8601 UTC with milliseconds: '2026-11-28T16:05:27.123Z'. Sorts as text in time order. */
export function nowIso(): string {
  return new Date().toISOString();
}
