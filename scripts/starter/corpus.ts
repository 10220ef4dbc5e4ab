/**
 * The starter model's corpus: the King James Version of the Bible (1611, public domain) as Debian's
 * bible-kjv-text package ships it, dumped by the package's own `bible` program and turned into plain prose
 * (one verse a line, a blank line between chapters, verse references removed).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CORPUS_PACKAGES = ['bible-kjv', 'bible-kjv-text'] as const;

/** "Ge1:1 In the beginning..." -> chapter "Ge1", text. Lines without a reference are dropped. */
const VERSE_LINE = /^([1-3]?[A-Za-z]+\d+):\d+ (.*)$/;

/** Turns the `bible -f` dump into prose: verses of one chapter on consecutive lines, chapters split by a blank line. */
export function kjvDumpToText(dump: string): string {
  const chapters: string[] = [];
  let current: string[] = [];
  let currentChapter = '';
  for (const line of dump.split('\n')) {
    const match = VERSE_LINE.exec(line.trimEnd());
    if (!match) continue;
    const [, chapter, verse] = match as unknown as [string, string, string];
    if (chapter !== currentChapter && current.length > 0) {
      chapters.push(current.join('\n'));
      current = [];
    }
    currentChapter = chapter;
    current.push(verse.trim());
  }
  if (current.length > 0) chapters.push(current.join('\n'));
  return chapters.join('\n\n') + '\n';
}

/** Splits the corpus into its chapters (the documents the model is trained on). */
export function corpusDocuments(text: string): string[] {
  return text.split('\n\n').map((d) => d.trim()).filter((d) => d.length > 0);
}

/**
 * Downloads the Debian packages into cacheDir (apt-get download, no root needed), unpacks them and writes
 * cacheDir/kjv.txt. Returns its path. Needs a Debian-family system with apt.
 */
export function buildKjvCorpus(cacheDir: string): string {
  const out = join(cacheDir, 'kjv.txt');
  if (existsSync(out)) return out;
  mkdirSync(cacheDir, { recursive: true });
  execFileSync('apt-get', ['download', ...CORPUS_PACKAGES], { cwd: cacheDir, stdio: 'inherit' });
  const root = join(cacheDir, 'root');
  for (const deb of readdirSync(cacheDir).filter((f) => f.endsWith('.deb'))) {
    execFileSync('dpkg', ['-x', join(cacheDir, deb), root]);
  }
  const dump = execFileSync(join(root, 'usr/bin/bible'), ['-p', join(root, 'usr/lib'), '-f', 'gen1:1-rev22:21'],
    { maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' });
  writeFileSync(out + '.tmp', kjvDumpToText(dump));
  renameSync(out + '.tmp', out);
  return out;
}
