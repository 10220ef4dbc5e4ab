/** Errors of the IPC layer, and every thrown value turned into the contract's {name, code, message}. */
import type { AppError } from '../../preload/contract';

export type IpcErrorCode = 'INVALID_INPUT' | 'UNKNOWN_COMMAND' | 'PATH_NOT_GRANTED' | 'PATH_INVALID' | 'NOT_FOUND' | 'BUSY' | 'IN_USE' | 'UNAUTHORIZED';

export class IpcError extends Error {
  override readonly name = 'IpcError';
  constructor(
    readonly code: IpcErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Only name, code and message cross to the renderer: no stack, no paths beyond what the message names. */
export function toAppError(error: unknown): AppError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name || 'Error', code: typeof code === 'string' && code !== '' ? code : 'INTERNAL', message: error.message };
  }
  return { name: 'Error', code: 'INTERNAL', message: String(error) };
}
