import { initial } from './0010-initial';
import { comparisonsSettings } from './0020-comparisons-settings';
import { runProgress } from './0030-run-progress';
import { ggufModels } from './0070-gguf-models';
import { comparisonTurns } from './0080-comparison-turns';
import type { Migration } from './types';

export type { Migration } from './types';

/** Every migration, oldest first. Add new ones at the end with the next multiple of ten. */
export const MIGRATIONS: readonly Migration[] = [initial, comparisonsSettings, runProgress, ggufModels, comparisonTurns];

export const LATEST_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
