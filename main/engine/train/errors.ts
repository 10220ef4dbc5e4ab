/** Errors of datasets and training: a stable `code` and a message naming the file, line, field or value. */
export type TrainErrorCode =
  | 'INVALID_DATASET'
  | 'EMPTY_DATASET'
  | 'INVALID_TRAIN_CONFIG'
  | 'INVALID_CHECKPOINT'
  | 'CANCELLED'
  | 'NON_FINITE_LOSS'
  /** The run would not fit in memory (refused before loading), or ran out of it. */
  | 'NOT_ENOUGH_MEMORY';

export class TrainError extends Error {
  override readonly name = 'TrainError';
  constructor(
    readonly code: TrainErrorCode,
    message: string,
  ) {
    super(message);
  }
}
