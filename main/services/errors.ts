/** Errors of the application services: a stable code and a message naming the bad value and what to do. */
export type ServiceErrorCode = 'SYMLINK_OUTSIDE' | 'NOT_A_FILE' | 'FILE_WORK_DIED' | 'BUSY'
  /** A run trained elsewhere does not match the library (its base or dataset is not there, or its adapter does not fit). */
  | 'ADAPTER_MISMATCH';

export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
  ) {
    super(message);
  }
}
