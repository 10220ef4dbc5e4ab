import type { AdapterVersion } from '../../../preload/contract';

export interface LineageNode {
  readonly version: AdapterVersion;
  readonly children: readonly LineageNode[];
  readonly depth: number;
}

/**
 * Versions as a tree: a version continued from another is its child. A parent from another adapter (or one
 * deleted since) makes the version a root, so no version is ever hidden.
 */
export function lineageTree(versions: readonly AdapterVersion[]): LineageNode[] {
  const ids = new Set(versions.map((v) => v.id));
  const childrenOf = new Map<string | null, AdapterVersion[]>();
  for (const v of versions) {
    const parent = v.parentVersionId && ids.has(v.parentVersionId) ? v.parentVersionId : null;
    const list = childrenOf.get(parent) ?? [];
    list.push(v);
    childrenOf.set(parent, list);
  }
  const build = (parent: string | null, depth: number, seen: Set<string>): LineageNode[] =>
    (childrenOf.get(parent) ?? [])
      .filter((v) => !seen.has(v.id))
      .sort((a, b) => a.version - b.version)
      .map((version) => {
        seen.add(version.id);
        return { version, depth, children: build(version.id, depth + 1, seen) };
      });
  return build(null, 0, new Set());
}

/** Depth-first order, the order the tree is drawn and navigated by keyboard. */
export function flattenLineage(nodes: readonly LineageNode[]): LineageNode[] {
  return nodes.flatMap((node) => [node, ...flattenLineage(node.children)]);
}
