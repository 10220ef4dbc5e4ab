import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openLibrary, type Library } from '../../main/store/library';
import { settings, tempDir, writeModelFolder, writePeftFolder } from './support/fixtures';

describe('startupCheck', () => {
  let tmp: ReturnType<typeof tempDir>;
  let lib: Library;
  beforeEach(() => {
    tmp = tempDir();
    lib = openLibrary(join(tmp.path, 'data'));
  });
  afterEach(() => {
    lib.close();
    tmp.dispose();
  });

  function setup() {
    const model = lib.models.import({ sourcePath: writeModelFolder(join(tmp.path, 'm')), mode: 'copy',
      architecture: 'gpt2', parameterCount: 80 });
    const ref = lib.models.import({ sourcePath: writeModelFolder(join(tmp.path, 'ref')), mode: 'reference',
      architecture: 'gpt2', parameterCount: 80 });
    writeFileSync(join(tmp.path, 'd.jsonl'), '{"text":"hello"}\n');
    const ds = lib.datasets.import({ sourcePath: join(tmp.path, 'd.jsonl'), format: 'text' });
    const adapter = lib.adapters.create({ name: 'a', baseModelId: model.id });
    const version = lib.versions.commit({ adapterId: adapter.id, filesFrom: writePeftFolder(join(tmp.path, 'p'), 1),
      take: 'move', origin: 'imported' });
    return { model, ref, ds, adapter, version };
  }

  it('a clean library reports nothing', () => {
    setup();
    const report = lib.startupCheck();
    expect(Object.values(report).every((list) => list.length === 0)).toBe(true);
  });

  it('removes model and dataset folders no row points at (an import that never completed), and only those', () => {
    const { model, ds } = setup();
    const root = lib.dataDir.root;
    // What a crash between the folder's rename and its row's insert leaves: complete copies, named like ids.
    const lostModel = join(root, 'models', 'mdl_20260101_abcdefghjkmn');
    const lostDataset = join(root, 'datasets', 'ds_20260101_abcdefghjkmn');
    mkdirSync(lostModel, { recursive: true });
    writeFileSync(join(lostModel, 'config.json'), '{}');
    mkdirSync(lostDataset, { recursive: true });
    writeFileSync(join(lostDataset, 'd.jsonl'), '{"text":"x"}\n');
    // Not the library's naming: left alone.
    mkdirSync(join(root, 'models', 'my-notes'));
    const report = lib.startupCheck();
    expect([...report.foldersRemoved].sort()).toEqual(['datasets/ds_20260101_abcdefghjkmn', 'models/mdl_20260101_abcdefghjkmn']);
    expect(existsSync(lostModel) || existsSync(lostDataset)).toBe(false);
    expect(existsSync(join(root, 'models', 'my-notes'))).toBe(true);
    expect(existsSync(lib.models.resolvePath(model.id)) && existsSync(lib.datasets.resolveFiles(ds.id).original)).toBe(true);
    expect(lib.startupCheck().foldersRemoved).toEqual([]);
  });

  it('finishes deletes a stop interrupted after their rows went: adapter and run folders without a row go', () => {
    const { adapter, ds } = setup();
    const run = lib.runs.create({ adapterId: adapter.id, datasetId: ds.id, settings: settings() });
    mkdirSync(lib.runs.checkpointsDir(run.id), { recursive: true });
    writeFileSync(join(lib.runs.checkpointsDir(run.id), 'step-1.bin'), 'x');
    const root = lib.dataDir.root;
    // What adapters.delete leaves when it stops between its transaction and the folders' removal.
    lib.db.transaction(() => {
      lib.db.prepare('DELETE FROM training_runs WHERE adapter_id = ?').run(adapter.id);
      lib.db.prepare('DELETE FROM adapter_versions WHERE adapter_id = ?').run(adapter.id);
      lib.db.prepare('DELETE FROM adapters WHERE id = ?').run(adapter.id);
    })();
    mkdirSync(join(root, 'runs', '.estimate'), { recursive: true });
    const report = lib.startupCheck();
    expect([...report.foldersRemoved].sort()).toEqual([`adapters/${adapter.id}`, `runs/${run.id}`]);
    expect(report.orphanFolders).toEqual([]);
    expect(existsSync(join(root, 'adapters', adapter.id)) || existsSync(join(root, 'runs', run.id))).toBe(false);
    expect(existsSync(join(root, 'runs', '.estimate'))).toBe(true); // not named like a run: not the library's to judge
  });

  it('a version delete that stopped midway: finished without its row, undone with it; an unmarked folder is kept', () => {
    const { adapter } = setup();
    const second = lib.versions.commit({ adapterId: adapter.id, filesFrom: writePeftFolder(join(tmp.path, 'p2'), 2), take: 'move', origin: 'imported' });
    const third = lib.versions.commit({ adapterId: adapter.id, filesFrom: writePeftFolder(join(tmp.path, 'p3'), 3), take: 'move', origin: 'imported' });
    const dir = join(lib.dataDir.root, 'adapters', adapter.id);
    // v2: marked and its row deleted, the folder not yet removed. v3: marked, the row still there.
    writeFileSync(join(dir, '.v2.deleting'), '');
    lib.db.prepare('DELETE FROM adapter_versions WHERE id = ?').run(second.id);
    writeFileSync(join(dir, '.v3.deleting'), '');
    // v4: a version folder without a row or a commit marker (none this library writes): kept and reported.
    writePeftFolder(join(dir, 'v4'), 4);
    const report = lib.startupCheck();
    expect(report.foldersRemoved).toEqual([`adapters/${adapter.id}/v2`]);
    expect(report.orphanFolders).toEqual([`adapters/${adapter.id}/v4`]);
    expect(readdirSync(dir).sort()).toEqual(['v1', 'v3', 'v4']);
    expect(lib.versions.get(third.id).status).toBe('ok');
  });

  it('a version commit that stopped midway: its marker is finished, never left; a rollback takes the folder too', () => {
    const { adapter, version } = setup();
    const dir = join(lib.dataDir.root, 'adapters', adapter.id);
    const row = lib.db.prepare('SELECT * FROM adapter_versions WHERE id = ?').get(version.id) as Record<string, unknown>;
    const { files_json: _files, ...pendingRow } = row;
    // v1: the row written, the marker not yet removed. v7: a marker whose folder never moved in.
    writeFileSync(join(dir, '.v1.committing'), JSON.stringify({ row: pendingRow, runId: null }));
    writeFileSync(join(dir, '.v7.committing'), JSON.stringify({ row: { ...pendingRow, id: 'ver_x', version: 7, path: `adapters/${adapter.id}/v7` }, runId: null }));
    // v8: moved in for a run whose transaction never committed (an imported run: no run row): the folder goes.
    writePeftFolder(join(dir, 'v8'), 8);
    writeFileSync(join(dir, '.v8.committing'), JSON.stringify({ row: { ...pendingRow, id: 'ver_y', version: 8, path: `adapters/${adapter.id}/v8` }, runId: 'run_20260101_abcdefghjkmn' }));
    // v9: a marker whose row cannot be inserted (a dataset that does not exist): the start goes on, the folder is kept.
    writePeftFolder(join(dir, 'v9'), 9);
    writeFileSync(join(dir, '.v9.committing'), JSON.stringify({ row: { ...pendingRow, id: 'ver_z', version: 9, path: `adapters/${adapter.id}/v9`, dataset_id: 'ds_20260101_abcdefghjkmn' }, runId: null }));
    const report = lib.startupCheck();
    expect(report.versionsRecorded).toEqual([]);
    expect(report.foldersRemoved).toEqual([`adapters/${adapter.id}/v8`]);
    expect(report.orphanFolders).toEqual([`adapters/${adapter.id}/v9`]);
    expect(readdirSync(dir).sort()).toEqual(['v1', 'v9']);
    rmSync(join(dir, 'v9'), { recursive: true });

    // Inside Library.transaction, a rollback after the commit removes its folder and marker with its row.
    expect(() => lib.transaction(() => {
      lib.versions.commit({ adapterId: adapter.id, filesFrom: writePeftFolder(join(tmp.path, 'p2'), 2), take: 'move', origin: 'imported' });
      expect(readdirSync(dir).sort()).toEqual(['.v2.committing', 'v1', 'v2']); // the marker stays until the commit
      throw new Error('a later write of the same import failed');
    })).toThrow('a later write of the same import failed');
    expect(readdirSync(dir)).toEqual(['v1']);
    lib.transaction(() => lib.versions.commit({ adapterId: adapter.id, filesFrom: writePeftFolder(join(tmp.path, 'p3'), 3), take: 'move', origin: 'imported' }));
    expect(readdirSync(dir).sort()).toEqual(['v1', 'v2']);
  });

  it('versions.delete leaves neither marker nor folder behind', () => {
    const { version } = setup();
    const dir = join(version.path, '..');
    lib.versions.delete(version.id);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('removes unfinished hub downloads: the process that would resume them is gone', () => {
    setup();
    const staging = join(lib.dataDir.root, 'downloads', 'owner--model@abc');
    mkdirSync(staging, { recursive: true });
    writeFileSync(join(staging, 'config.json'), '{}');
    writeFileSync(join(staging, 'model.safetensors.part'), 'half');
    expect(lib.startupCheck().downloadsRemoved).toEqual(['downloads/owner--model@abc']);
    expect(readdirSync(join(lib.dataDir.root, 'downloads'))).toEqual([]);
  });

  it('a referenced GGUF file is ok while it is there, missing when its app removed it, ok when it is back', () => {
    const file = join(tmp.path, 'blob');
    writeFileSync(file, 'GGUF weights');
    const gguf = lib.models.importGguf({ path: file, architecture: 'llama', parameterCount: 1, origin: 'ollama', originName: 'x:latest', quantization: 'F16', contentHash: 'sha256:0' });
    expect(lib.startupCheck().modelsMissing).toEqual([]);
    renameSync(file, `${file}.away`);
    expect(lib.startupCheck().modelsMissing).toEqual([gguf.id]);
    renameSync(`${file}.away`, file);
    expect(lib.startupCheck().modelsFound).toEqual([gguf.id]);
    expect(lib.models.get(gguf.id).status).toBe('ok');
  });

  it('marks rows whose files are gone or partial as missing, and ok again when they return', () => {
    const { model, ref, ds, version } = setup();
    const weights = join(version.path, 'adapter_model.safetensors');
    truncateSync(weights, 10);
    rmSync(join(model.path, 'model.safetensors'));
    renameSync(join(tmp.path, 'ref'), join(tmp.path, 'ref-moved'));
    rmSync(ds.originalFile);
    const report = lib.startupCheck();
    expect(report.versionsMissing).toEqual([version.id]);
    expect([...report.modelsMissing].sort()).toEqual([model.id, ref.id].sort());
    expect(report.datasetsMissing).toEqual([ds.id]);
    expect(lib.versions.get(version.id).status).toBe('missing');
    expect(lib.models.get(ref.id).status).toBe('missing');

    renameSync(join(tmp.path, 'ref-moved'), join(tmp.path, 'ref'));
    const again = lib.startupCheck();
    expect(again.modelsFound).toEqual([ref.id]);
    expect(again.versionsMissing).toEqual([]);
    expect(lib.models.get(ref.id).status).toBe('ok');
  });

  it('a version folder swapped for a symlink to outside counts as missing', () => {
    const { version } = setup();
    renameSync(version.path, join(tmp.path, 'stolen'));
    symlinkSync(join(tmp.path, 'stolen'), version.path);
    expect(lib.startupCheck().versionsMissing).toEqual([version.id]);
    expect(() => lib.versions.resolvePath(version.id)).toThrow(/outside the data directory/);
  });

  it('turns running runs into interrupted ones and forgets a checkpoint that is gone', () => {
    const { adapter, ds } = setup();
    const keep = lib.runs.create({ adapterId: adapter.id, datasetId: ds.id, settings: settings() });
    const lose = lib.runs.create({ adapterId: adapter.id, datasetId: ds.id, settings: settings() });
    const queued = lib.runs.create({ adapterId: adapter.id, datasetId: ds.id, settings: settings() });
    for (const run of [keep, lose]) {
      lib.runs.start(run.id);
      const path = join(lib.runs.checkpointsDir(run.id), 'step-5');
      mkdirSync(path);
      writeFileSync(join(path, 'adapter_model.safetensors'), 'x');
      lib.runs.recordCheckpoint(run.id, path, 5);
    }
    rmSync(join(lib.dataDir.root, 'runs', lose.id), { recursive: true });
    const report = lib.startupCheck();
    expect([...report.runsInterrupted].sort()).toEqual([keep.id, lose.id].sort());
    expect(report.checkpointsLost).toEqual([lose.id]);
    expect(lib.runs.get(keep.id)).toMatchObject({ status: 'interrupted', step: 5,
      lastCheckpoint: `runs/${keep.id}/checkpoints/step-5` });
    expect(lib.runs.get(keep.id).error).toMatch(/resume/);
    expect(lib.runs.get(lose.id)).toMatchObject({ status: 'interrupted', step: 0, lastCheckpoint: null });
    expect(lib.runs.get(queued.id).status).toBe('queued');
    expect(lib.runs.start(keep.id).status).toBe('running');
  });

  it('refuses to record a checkpoint outside the run folder or one not written yet', () => {
    const { adapter, ds } = setup();
    const run = lib.runs.create({ adapterId: adapter.id, datasetId: ds.id, settings: settings() });
    lib.runs.start(run.id);
    expect(() => lib.runs.recordCheckpoint(run.id, join(tmp.path, 'elsewhere'), 1)).toThrow(/not inside the data/);
    expect(() => lib.runs.recordCheckpoint(run.id, join(lib.runs.checkpointsDir(run.id), 'step-1'), 1))
      .toThrow(/does not exist/);
    expect(() => lib.runs.recordCheckpoint(run.id, join(lib.dataDir.root, 'models', 'x'), 1))
      .toThrow(/is not inside runs\//);
  });
});
