/** Errors of the library (SQLite records and the files they point at): a stable `code`, a message naming the value. */
export type StoreErrorCode =
  | 'DATABASE_TOO_NEW'
  | 'MIGRATION_FAILED'
  | 'NOT_FOUND'
  | 'IN_USE'
  | 'INVALID_INPUT'
  | 'PATH_OUTSIDE_DATA_DIR'
  | 'PATH_INVALID'
  | 'FILE_MISSING'
  | 'ALREADY_EXISTS'
  | 'INVALID_STATE'
  | 'LIBRARY_IN_USE';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function notFound(kind: string, id: string): StoreError {
  return new StoreError('NOT_FOUND', `${kind} '${id}' is not in the library; list them to see the ids that exist`);
}
