/**
 * Run as a child process by crash.test.ts: trains "versions" into a library as fast as it can until killed.
 *   node --import tsx crash-child.ts <dataDir> <runId> <adapterId> <mode>
 * mode 'loop': forever: checkpoint file (atomic) + record, metrics batch, PEFT folder staged and committed.
 * mode 'kill-before-rename': one checkpoint, then a second one killed between its temp write and its rename.
 * mode 'kill-before-insert': one checkpoint, then the run's adapter committed, killed between its move and its row.
 * Prints "committed <n>" / "checkpoint <n>" after each durable step so the parent knows where it got.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../../../main/store/files';
import { openLibrary } from '../../../main/store/library';
import { checkpointBytes, BIG_RANK } from './crash-data';
import { peftBytes } from './fixtures';

const [dataDir, runId, adapterId, mode] = process.argv.slice(2) as [string, string, string, string];
const lib = openLibrary(dataDir);
lib.runs.start(runId);
const checkpoints = lib.runs.checkpointsDir(runId);
const start = lib.runs.get(runId).step;

function checkpoint(step: number, kill = false): void {
  const path = join(checkpoints, `step-${step}.bin`);
  writeFileAtomic(path, checkpointBytes(step), kill ? { beforeRename: () => process.kill(process.pid, 'SIGKILL') } : {});
  lib.runs.recordCheckpoint(runId, path, step);
  process.stdout.write(`checkpoint ${step}\n`);
}

if (mode === 'kill-before-rename') {
  checkpoint(start + 1);
  checkpoint(start + 2, true);
} else if (mode === 'kill-before-insert') {
  checkpoint(start + 1);
  const staging = join(dataDir, 'runs', runId, 'output');
  writeFileAtomic(join(staging, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: BIG_RANK, step: start + 1 }));
  writeFileAtomic(join(staging, 'adapter_model.safetensors'), peftBytes(start + 1, BIG_RANK));
  // Killed once the folder is in place, as its row is about to be written.
  const prepare = lib.db.prepare.bind(lib.db);
  lib.db.prepare = ((sql: string) => {
    if (sql.trimStart().startsWith('INSERT INTO adapter_versions')) process.kill(process.pid, 'SIGKILL');
    return prepare(sql);
  }) as typeof lib.db.prepare;
  lib.versions.commit({ adapterId, filesFrom: staging, take: 'move', origin: 'trained', runId, metrics: { steps: start + 1 } });
} else {
  for (let step = start + 1; ; step++) {
    checkpoint(step);
    lib.metrics.append(runId, Array.from({ length: 50 }, (_, i) => ({ step: step * 100 + i, loss: 1 / (step + i) })));
    const staging = join(dataDir, 'runs', runId, `out-${step}`);
    writeFileAtomic(join(staging, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: BIG_RANK, step }));
    writeFileAtomic(join(staging, 'adapter_model.safetensors'), peftBytes(step, BIG_RANK));
    lib.versions.commit({ adapterId, filesFrom: staging, take: 'move', origin: 'trained', metrics: { steps: step } });
    process.stdout.write(`committed ${step}\n`);
  }
}
