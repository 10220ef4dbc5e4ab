/**
 * Lineage of adapter versions: the chain a version was continued from (root first), the whole tree around it,
 * and the curves of every run along the chain laid end to end.
 */
import { notFound } from './errors';
import type { MetricsRepo } from './repos/metrics';
import type { StoreContext } from './repos/context';
import { toVersion } from './repos/versions';
import type { RunMetricPoint, VersionDetails, VersionRow } from './types';

export interface LineageNode {
  readonly version: VersionDetails;
  readonly adapterName: string;
  readonly datasetName: string | null;
  readonly children: LineageNode[];
}

export interface CurveSegment {
  readonly versionId: string;
  readonly label: string;
  readonly runId: string;
  /** Steps of the segments before this one: plot at stepOffset + step to see continued training as one curve. */
  readonly stepOffset: number;
  readonly points: readonly RunMetricPoint[];
}

type LabeledRow = VersionRow & { adapter_name: string; dataset_name: string | null };

// Deep enough for any real history; stops a corrupt parent cycle from looping forever.
const MAX_DEPTH = 10_000;

export class LineageQueries {
  constructor(
    private readonly ctx: StoreContext,
    private readonly metrics: MetricsRepo,
  ) {}

  /** The version and its ancestors, root first. */
  chain(versionId: string): LineageNode[] {
    const rows = this.ctx.db.prepare(`WITH RECURSIVE up(id, depth) AS (
        SELECT ?, 0
        UNION ALL
        SELECT v.parent_version_id, up.depth + 1 FROM adapter_versions v JOIN up ON v.id = up.id
        WHERE v.parent_version_id IS NOT NULL AND up.depth < ${MAX_DEPTH})
      SELECT v.*, a.name AS adapter_name, d.name AS dataset_name FROM up
      JOIN adapter_versions v ON v.id = up.id JOIN adapters a ON a.id = v.adapter_id
      LEFT JOIN datasets d ON d.id = v.dataset_id ORDER BY up.depth DESC`).all(versionId) as LabeledRow[];
    if (rows.length === 0) throw notFound('adapter version', versionId);
    return rows.map((r) => this.node(r));
  }

  /** The tree the version belongs to: its root and every version continued from it, children oldest first. */
  tree(versionId: string): LineageNode {
    const root = this.chain(versionId)[0];
    if (!root) throw notFound('adapter version', versionId);
    const rows = this.ctx.db.prepare(`WITH RECURSIVE down(id, depth) AS (
        SELECT ?, 0
        UNION ALL
        SELECT v.id, down.depth + 1 FROM adapter_versions v JOIN down ON v.parent_version_id = down.id
        WHERE down.depth < ${MAX_DEPTH})
      SELECT v.*, a.name AS adapter_name, d.name AS dataset_name FROM down
      JOIN adapter_versions v ON v.id = down.id JOIN adapters a ON a.id = v.adapter_id
      LEFT JOIN datasets d ON d.id = v.dataset_id ORDER BY down.depth, v.created_at, v.id`)
      .all(root.version.id) as LabeledRow[];
    const nodes = new Map(rows.map((r) => [r.id, this.node(r)]));
    for (const row of rows) {
      const parent = row.parent_version_id === null ? undefined : nodes.get(row.parent_version_id);
      const node = nodes.get(row.id);
      if (parent && node && row.id !== root.version.id) parent.children.push(node);
    }
    return nodes.get(root.version.id) ?? root;
  }

  /** The metric series of the runs that produced each version of the chain, root first, steps offset. */
  curves(versionId: string, options: { maxPointsPerRun?: number } = {}): CurveSegment[] {
    const segments: CurveSegment[] = [];
    let offset = 0;
    for (const node of this.chain(versionId)) {
      const runs = this.ctx.db.prepare(`SELECT id FROM training_runs WHERE adapter_version_id = ?
        ORDER BY created_at, id`).all(node.version.id) as { id: string }[];
      for (const run of runs) {
        const points = this.metrics.list(run.id, { maxPoints: options.maxPointsPerRun });
        segments.push({
          versionId: node.version.id, label: `${node.adapterName} v${node.version.version}`, runId: run.id,
          stepOffset: offset, points,
        });
        offset += points.at(-1)?.step ?? 0;
      }
    }
    return segments;
  }

  private node(row: LabeledRow): LineageNode {
    return { version: toVersion(row, this.ctx), adapterName: row.adapter_name, datasetName: row.dataset_name,
      children: [] };
  }
}
