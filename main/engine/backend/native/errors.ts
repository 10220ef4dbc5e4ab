/** Errors of the native kernels, with a stable code for callers and tests. */
export type NativeKernelErrorCode =
  | 'MATMUL_RANK'
  | 'MATMUL_INNER_MISMATCH'
  | 'MATMUL_BATCH_MISMATCH'
  | 'NATIVE_UNSUPPORTED_BACKEND'
  | 'NATIVE_BAD_THREADS'
  | 'NATIVE_UNSUPPORTED_ACTIVATION'
  | 'NATIVE_BAD_ARGUMENT'
  | 'NATIVE_OUT_OF_BOUNDS';

export class NativeKernelError extends Error {
  override readonly name = 'NativeKernelError';

  constructor(readonly code: NativeKernelErrorCode, message: string) {
    super(message);
  }
}
