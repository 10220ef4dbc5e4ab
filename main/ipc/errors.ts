/** Errors of the IPC layer, and every thrown value turned into the contract's {name, code, message}. */
import type { AppError } from '../../preload/contract';
import { toWireError } from '../host/errors';

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

/**
 * Only name, code and message cross to the renderer: no stack, no paths beyond what the message names. The same
 * shape the engine host's errors cross its wire in, made by the same function.
 */
export const toAppError: (error: unknown) => AppError = toWireError;
