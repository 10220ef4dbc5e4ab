/** The handler table, typed from the contract: a missing or mistyped handler is a compile error. */
import type { CommandArgs, CommandName, CommandResult } from '../../preload/contract';

export type Handler<K extends CommandName> = (args: CommandArgs<K>) => Promise<CommandResult<K>>;
export type Handlers = { readonly [K in CommandName]: Handler<K> };
