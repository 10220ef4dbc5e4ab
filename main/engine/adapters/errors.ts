/** Errors of the adapter tools (resident set, merge, PEFT import/export, preflight, analysis): a stable `code`. */
export type AdapterErrorCode =
  | 'ADAPTER_NOT_LOADED'
  | 'ADAPTER_EXISTS'
  | 'ADAPTER_MERGED'
  | 'ADAPTER_NOT_MERGED'
  | 'MERGE_NOT_FINITE'
  | 'UNSUPPORTED_ADAPTER'
  | 'INCOMPATIBLE_ADAPTER'
  | 'INVALID_ADAPTER_FILE'
  | 'INVALID_ARGUMENT'
  | 'EXPORT_FAILED';

export class AdapterError extends Error {
  override readonly name = 'AdapterError';
  constructor(
    readonly code: AdapterErrorCode,
    message: string,
  ) {
    super(message);
  }
}
