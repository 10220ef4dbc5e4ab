/**
 * Stands in for better-sqlite3 in the GPU check pack: the pack runs the engine's commands (generate, train, eval,
 * merge, inspect, adapter) and the checks, none of which open the library; it carries no SQLite binary.
 */
export default class Database {
  constructor() {
    throw new Error('this lorasmith is the GPU check pack, which carries no SQLite: `serve` and the library are not available here');
  }
}
