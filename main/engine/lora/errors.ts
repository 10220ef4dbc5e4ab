/** Errors of LoRA configuration, injection and PEFT files: a stable `code` and a message naming the bad value. */
export class LoraError extends Error {
  override readonly name = 'LoraError';
  constructor(
    readonly code: 'INVALID_LORA_CONFIG' | 'NO_TARGET_MODULES' | 'ADAPTER_EXISTS' | 'INVALID_ADAPTER_FILE' | 'ADAPTER_NOT_FOUND' | 'WEIGHT_NOT_A_TENSOR',
    message: string,
  ) {
    super(message);
  }
}
