/** Errors of the engine host and the one place any error becomes the {name, code, message} wire shape. */
import type { WireError } from './protocol';

export type HostErrorCode =
  | 'HOST_DIED'
  | 'HOST_STOPPED'
  | 'CANCELLED'
  | 'NO_BASE_MODEL'
  | 'ADAPTER_NOT_LOADED'
  | 'BUSY'
  | 'UNKNOWN_REQUEST'
  | 'ENGINE_UNAVAILABLE'
  | 'INTERNAL';

export class HostError extends Error {
  override readonly name = 'HostError';
  constructor(
    readonly code: HostErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Any thrown value to the wire shape: engine errors keep their own name and code; others become INTERNAL. */
export function toWireError(error: unknown): WireError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name || 'Error',
      code: typeof code === 'string' && code !== '' ? code : 'INTERNAL',
      message: error.message || String(error),
    };
  }
  return { name: 'Error', code: 'INTERNAL', message: String(error) };
}

/** An error re-created on the receiving side, so callers can `catch (e) { e.code }` as for a local one. */
export class RemoteError extends Error {
  readonly code: string;
  constructor(wire: WireError) {
    super(wire.message);
    this.name = wire.name;
    this.code = wire.code;
  }
}
