/**
 * Copy-on-write Set and Map updates for state held in `$state.raw`: a change makes a new collection, so the
 * assignment is what Svelte sees. (SvelteSet/SvelteMap suit collections mutated in place; these never are.)
 */
export function setOf<T>(items: Iterable<T> = []): ReadonlySet<T> {
  return new Set(items);
}

export function withItems<T>(set: ReadonlySet<T>, items: Iterable<T>, present: boolean): ReadonlySet<T> {
  const next = new Set(set);
  for (const item of items) {
    if (present) next.add(item);
    else next.delete(item);
  }
  return next;
}

export function mapOf<K, V>(entries: Iterable<readonly [K, V]> = []): ReadonlyMap<K, V> {
  return new Map(entries);
}

export function withEntry<K, V>(map: ReadonlyMap<K, V>, key: K, value: V): ReadonlyMap<K, V> {
  return new Map(map).set(key, value);
}
