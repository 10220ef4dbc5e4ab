// A crash at a chosen point of a real command: preloaded with `node --import`, it kills the process (SIGKILL, as a
// power cut or `kill -9` would) at the first rename whose source and destination, joined by a newline, contain
// LORASMITH_CRASH_ON_RENAME: before the rename, or just after it where LORASMITH_CRASH_AFTER_RENAME=1 (the moment
// between a folder moved into place and the row that records it).
// Every writer publishes by renaming a complete temp, so these are the moments a crash leaves the most behind.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const where = process.env.LORASMITH_CRASH_ON_RENAME;
const after = process.env.LORASMITH_CRASH_AFTER_RENAME === '1';
if (where) {
  const renameSync = fs.renameSync;
  fs.renameSync = (from, to) => {
    const matches = `${from}\n${to}`.includes(where);
    if (matches && !after) process.kill(process.pid, 'SIGKILL');
    const result = renameSync(from, to);
    if (matches) process.kill(process.pid, 'SIGKILL');
    return result;
  };
  syncBuiltinESMExports();
}
