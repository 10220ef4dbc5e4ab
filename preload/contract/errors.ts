/** The only error shape that crosses a process boundary (IPC, WebSocket, host worker). */
export interface AppError {
  readonly name: string;
  /** Stable, machine-readable: 'INVALID_INPUT', 'NOT_FOUND', 'HOST_DIED', 'CANCELLED', ... */
  readonly code: string;
  /** Names the bad value and what to do: "rank must be a positive integer, got 0". */
  readonly message: string;
}

export function isAppError(value: unknown): value is AppError {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === 'string' && typeof v.code === 'string' && typeof v.message === 'string';
}
