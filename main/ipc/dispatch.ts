/**
 * The one entry every transport (Electron IPC, the browser-mode WebSocket, the in-memory test pair) goes
 * through: check the name against the contract's table, parse the args with the command's schema, run the
 * handler, and turn any failure into {name, code, message}.
 */
import { z } from 'zod';
import { COMMAND_NAMES, type AppError, type CommandName } from '../../preload/contract';
import { IpcError, toAppError } from './errors';
import { SCHEMAS } from './schemas';
import type { Handlers } from './types';

const NAMES: ReadonlySet<string> = new Set(COMMAND_NAMES);

export type DispatchOutcome = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: AppError };

export function isCommandName(name: unknown): name is CommandName {
  return typeof name === 'string' && NAMES.has(name);
}

export async function dispatch(handlers: Handlers, name: unknown, rawArgs: unknown): Promise<DispatchOutcome> {
  try {
    if (!isCommandName(name)) throw new IpcError('UNKNOWN_COMMAND', `unknown command ${JSON.stringify(name)}; the contract lists ${COMMAND_NAMES.length} commands`);
    const parsed = SCHEMAS[name].safeParse(rawArgs ?? {});
    if (!parsed.success) throw new IpcError('INVALID_INPUT', `${name}: ${z.prettifyError(parsed.error).replace(/\n+/g, '; ')}`);
    const handler = handlers[name] as (args: unknown) => Promise<unknown>;
    return { ok: true, result: await handler(parsed.data) };
  } catch (error) {
    return { ok: false, error: toAppError(error) };
  }
}
