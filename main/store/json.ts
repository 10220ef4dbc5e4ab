/** JSON in columns: written with sorted keys, so equal settings are equal text and can be compared in SQL. */
export function stableJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/** Parses a JSON column the store itself wrote; `T` is the type it was written from. */
export function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

/** Drops null columns so optional domain fields are absent rather than null. */
export function optional<T>(value: T | null): T | undefined {
  return value === null ? undefined : value;
}

/** The object without its undefined fields (domain objects leave absent values out rather than undefined). */
export function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
