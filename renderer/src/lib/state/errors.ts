import { isAppError } from '../../../../preload/contract';

/** The sentence to show for a failed command: AppError messages already name the bad value and the fix. */
export function messageOf(error: unknown): string {
  if (isAppError(error)) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
