/** The library: the only writer of library.sqlite and of the files its rows point at. */
export { openLibrary, type Library, type LibraryOptions } from './library';
export { StoreError, type StoreErrorCode } from './errors';
export { HOLDER_FILE, LOCK_FILE, lockDataDir, type DataDirLock, type LockHolder } from './lock';
export { DataDir, layout } from './paths';
export { migrate, schemaVersion, LATEST_VERSION } from './migrate';
export { MIGRATIONS, type Migration } from './migrations/index';
export type { ModelImport } from './repos/models';
export type { DatasetImport, NormalizedInput } from './repos/datasets';
export type { VersionCommit } from './repos/versions';
export type { RunCreate, RunDetails } from './repos/runs';
export type { MetricsSummary } from './repos/metrics';
export type { ComparisonSave } from './repos/comparisons';
export type { JsonValue } from './repos/settings';
export type { LineageNode, CurveSegment } from './lineage';
export type * from './types';
