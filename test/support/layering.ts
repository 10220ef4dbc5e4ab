/**
 * The house's import arrows (../shared/ARCHITECTURE.md), checked by reading import lines, independently of ESLint.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export interface Violation {
  readonly file: string;
  readonly line: number;
  readonly specifier: string;
  readonly rule: string;
}

interface Rule {
  readonly name: string;
  /** Files the rule applies to, as a path prefix relative to the repo root. */
  readonly from: string;
  /** True if importing `target` (a package name, or a repo-relative path for relative imports) is forbidden. */
  readonly forbids: (target: string, isRelative: boolean) => boolean;
  /** Files under `from` the rule does not apply to. */
  readonly except?: readonly string[];
}

/** The file worker's side of main/services: the one place there that runs the engine (in a worker thread). */
export const FILE_WORKER_FILES = ['main/services/file-work/jobs.ts', 'main/services/file-work/worker.ts'];

const NODE_BUILTIN = /^(node:|fs$|fs\/|path$|os$|child_process$|worker_threads$|crypto$|url$|util$)/;

export const RULES: readonly Rule[] = [
  {
    name: 'engine imports no electron, better-sqlite3, store, services, ipc, host, cli or preload',
    from: 'main/engine/',
    forbids: (t, rel) =>
      rel ? /^(main\/(store|services|ipc|host|cli|app|index)|preload)/.test(t) && !t.startsWith('main/engine/')
        : t === 'electron' || t === 'better-sqlite3',
  },
  {
    name: 'common imports only node built-ins: the engine and the store both use it',
    from: 'main/common/',
    forbids: (t, rel) => (rel ? !t.startsWith('main/common/') : !NODE_BUILTIN.test(t)),
  },
  {
    name: 'store imports no electron, engine, services, ipc, host or cli',
    from: 'main/store/',
    forbids: (t, rel) => (rel ? /^main\/(engine|services|ipc|host|cli)\//.test(t) : t === 'electron'),
  },
  {
    name: 'host imports no store, services, ipc, cli or better-sqlite3',
    from: 'main/host/',
    forbids: (t, rel) => (rel ? /^main\/(store|services|ipc|cli)\//.test(t) : t === 'better-sqlite3'),
  },
  {
    name: 'ipc imports nothing from the engine: work on files goes to services (a worker) or the host',
    from: 'main/ipc/',
    forbids: (t, rel) => rel && t.startsWith('main/engine/'),
  },
  {
    name: 'services import no electron, ipc or cli, and the engine only from the file worker',
    from: 'main/services/',
    except: FILE_WORKER_FILES,
    forbids: (t, rel) => (rel ? /^main\/(engine|ipc|cli)\//.test(t) : t === 'electron'),
  },
  {
    name: 'the file worker imports no electron, store, ipc or cli (it runs in a worker thread; the store has one writer)',
    from: 'main/services/file-work/jobs.ts',
    forbids: (t, rel) => (rel ? /^main\/(store|ipc|cli)\//.test(t) : t === 'electron' || t === 'better-sqlite3'),
  },
  {
    name: 'cli imports no electron',
    from: 'main/cli/',
    forbids: (t, rel) => !rel && t === 'electron',
  },
  {
    name: 'contract imports nothing outside preload/contract',
    from: 'preload/contract/',
    forbids: (t, rel) => !rel || !t.startsWith('preload/contract/'),
  },
  {
    name: 'renderer imports no electron, node built-ins, main or preload (except preload/contract)',
    from: 'renderer/',
    forbids: (t, rel) =>
      rel ? t.startsWith('main/') || (t.startsWith('preload/') && !t.startsWith('preload/contract'))
        : t === 'electron' || t === 'better-sqlite3' || NODE_BUILTIN.test(t),
  },
];

const IMPORT_PATTERNS = [
  /^\s*import\s[^'"]*?from\s*['"]([^'"]+)['"]/,
  /^\s*import\s*['"]([^'"]+)['"]/,
  /^\s*export\s[^'"]*?from\s*['"]([^'"]+)['"]/,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/,
  /\brequire\(\s*['"]([^'"]+)['"]\s*\)/,
];

/** Import specifiers of one source text, with 1-based line numbers. Multi-line imports are joined first. */
export function importsOf(source: string): { line: number; specifier: string }[] {
  const found: { line: number; specifier: string }[] = [];
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let text = lines[i] ?? '';
    // Join `import {\n a,\n b\n} from 'x'` into one line so the patterns see it whole.
    if (/^\s*(import|export)\b[^'"]*$/.test(text) && !/;\s*$/.test(text)) {
      let j = i + 1;
      while (j < lines.length && j < i + 40 && !/from\s*['"]/.test(text)) text += ' ' + (lines[j++] ?? '');
    }
    for (const pattern of IMPORT_PATTERNS) {
      const match = pattern.exec(text);
      if (match?.[1]) {
        found.push({ line: i + 1, specifier: match[1] });
        break;
      }
    }
  }
  return found;
}

/** Violations in one file, given its repo-relative path and text. */
export function checkFile(repoRelativePath: string, source: string): Violation[] {
  const file = repoRelativePath.split(sep).join('/');
  const rules = RULES.filter((r) => file.startsWith(r.from) && !r.except?.includes(file));
  const violations: Violation[] = [];
  for (const { line, specifier } of importsOf(source)) {
    const isRelative = specifier.startsWith('.');
    const target = isRelative ? join(dirname(file), specifier).split(sep).join('/') : specifier;
    for (const rule of rules) {
      if (rule.forbids(target, isRelative)) violations.push({ file, line, specifier, rule: rule.name });
    }
  }
  return violations;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (/\.(ts|js|mjs|cjs|svelte)$/.test(name)) out.push(path);
  }
  return out;
}

export function checkTree(root: string): Violation[] {
  const absoluteRoot = resolve(root);
  return ['main', 'preload', 'renderer']
    .flatMap((top) => sourceFiles(join(absoluteRoot, top)))
    .flatMap((path) => checkFile(relative(absoluteRoot, path), readFileSync(path, 'utf8')));
}
