/** Errors of model files (safetensors, GGUF, config.json, tokenizer files): a stable `code` and a message naming the bad value. */
export type ModelIoErrorCode =
  | 'INVALID_SAFETENSORS'
  | 'INVALID_GGUF'
  | 'UNSUPPORTED_DTYPE'
  | 'TENSOR_NOT_FOUND'
  | 'MODEL_NOT_FOUND'
  | 'INVALID_CONFIG'
  | 'UNSUPPORTED_MODEL'
  | 'INVALID_TOKENIZER'
  | 'TOKEN_OUT_OF_RANGE'
  | 'NON_FINITE';

export class ModelIoError extends Error {
  override readonly name = 'ModelIoError';
  constructor(
    readonly code: ModelIoErrorCode,
    message: string,
  ) {
    super(message);
  }
}
