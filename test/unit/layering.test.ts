import { describe, expect, it } from 'vitest';
import { checkFile, checkTree, importsOf } from '../support/layering';

describe('layering', () => {
  it('the source tree has no forbidden import arrow', () => {
    expect(checkTree('.')).toEqual([]);
  });

  it('flags an engine file that imports electron', () => {
    const violations = checkFile('main/engine/models/gpt2.ts', "import { app } from 'electron';\n");
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ line: 1, specifier: 'electron' });
  });

  it('flags engine -> store through a relative path, and a multi-line import', () => {
    const source = "import {\n  openStore,\n} from '../../store/db';\nimport { x } from './ok';\n";
    const violations = checkFile('main/engine/train/loop.ts', source);
    expect(violations.map((v) => v.specifier)).toEqual(['../../store/db']);
  });

  it('lets the engine and the store use main/common, which imports only node built-ins', () => {
    expect(checkFile('main/engine/train/record.ts', "import { hashFile } from '../../common/hash';\n")).toEqual([]);
    expect(checkFile('main/store/repos/models.ts', "import { hashFolder } from '../../common/hash';\n")).toEqual([]);
    const source = "import { createHash } from 'node:crypto';\nimport { x } from '../store/ids';\nimport z from 'zod';\n";
    expect(checkFile('main/common/hash.ts', source).map((v) => v.specifier)).toEqual(['../store/ids', 'zod']);
  });

  it('flags node built-ins and main/ in the renderer but allows the contract', () => {
    const source = [
      "import fs from 'node:fs';",
      "import type { Api } from '../../preload/contract';",
      "import { serve } from '../../main/host/serve';",
    ].join('\n');
    const violations = checkFile('renderer/src/App.svelte', source);
    expect(violations.map((v) => v.specifier)).toEqual(['node:fs', '../../main/host/serve']);
  });

  it('flags any import from the contract to outside it, dynamic ones too', () => {
    const violations = checkFile('preload/contract/x.ts', "const m = await import('zod');\nimport './domain';\n");
    expect(violations.map((v) => v.specifier)).toEqual(['zod']);
  });

  it('flags the engine in ipc and in services outside the file worker, and allows it in the worker', () => {
    const source = "import { readModelConfig } from '../../engine/models/registry';\n";
    expect(checkFile('main/ipc/handlers/library.ts', source).map((v) => v.specifier)).toEqual(['../../engine/models/registry']);
    expect(checkFile('main/services/file-work/client.ts', source)).toHaveLength(1);
    expect(checkFile('main/services/file-work/jobs.ts', source)).toEqual([]);
    expect(checkFile('main/services/file-work/jobs.ts', "import { openLibrary } from '../../store/index';\n")).toHaveLength(1);
    expect(checkFile('main/store/repos/models.ts', "import { FileWork } from '../../services/file-work/client';\n")).toHaveLength(1);
  });

  it('reads re-exports and side-effect imports', () => {
    expect(importsOf("export * from './a';\nimport './b.css';\n").map((i) => i.specifier)).toEqual(['./a', './b.css']);
  });
});
