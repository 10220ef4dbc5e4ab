import type { Migration } from './types';

/**
 * Progress a run can be resumed and shown from without reading its whole series: the last step and the planned
 * total on the run, gradient norm and epoch per metric point. Existing runs get their step from their metrics.
 */
export const runProgress: Migration = {
  version: 30,
  name: '0030-run-progress',
  up(db) {
    db.exec(`
      ALTER TABLE run_metrics ADD COLUMN grad_norm REAL;
      ALTER TABLE run_metrics ADD COLUMN epoch REAL;
      ALTER TABLE training_runs ADD COLUMN step INTEGER NOT NULL DEFAULT 0 CHECK (step >= 0);
      ALTER TABLE training_runs ADD COLUMN total_steps INTEGER CHECK (total_steps IS NULL OR total_steps >= 0);
      UPDATE training_runs
         SET step = COALESCE((SELECT MAX(step) FROM run_metrics WHERE run_metrics.run_id = training_runs.id), 0);
    `);
  },
};
