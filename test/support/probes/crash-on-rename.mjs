// A crash at a chosen point of a real command: preloaded with `node --import`, it kills the process (SIGKILL, as a
// power cut or `kill -9` would) at the first rename whose source or destination contains LORASMITH_CRASH_ON_RENAME.
// Every writer publishes by renaming a complete temp, so this is the moment a crash leaves the most behind.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const where = process.env.LORASMITH_CRASH_ON_RENAME;
if (where) {
  const renameSync = fs.renameSync;
  fs.renameSync = (from, to) => {
    if (`${from}\n${to}`.includes(where)) process.kill(process.pid, 'SIGKILL');
    return renameSync(from, to);
  };
  syncBuiltinESMExports();
}
