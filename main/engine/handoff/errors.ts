/** Errors of run export and import: a stable `code` and a message naming the file, folder or value and what to do. */
export type HandoffErrorCode =
  /** The export folder exists and is not empty. */
  | 'OUTPUT_NOT_EMPTY'
  /** The run cannot be exported (full fine-tuning has no PEFT adapter). */
  | 'UNSUPPORTED_RUN'
  /** A run result folder is missing a file or holds one that does not parse. */
  | 'INVALID_RUN_RESULT'
  /** The result's adapter does not fit the base model it names. */
  | 'ADAPTER_MISMATCH';

export class HandoffError extends Error {
  override readonly name = 'HandoffError';
  constructor(
    readonly code: HandoffErrorCode,
    message: string,
  ) {
    super(message);
  }
}
