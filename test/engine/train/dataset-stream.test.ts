/**
 * Datasets read line by line in bounded memory: the same records as parsing the whole text, whatever the chunk
 * boundaries; text refused by content (NUL bytes, invalid UTF-8 named with its line), records too long to train
 * skipped with a reason, and the streamed normalized file byte for byte what the in-memory writer makes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  normalizeDataset, normalizeDatasetToFile, readDatasetHead, writeNormalizedDataset,
} from '../../../main/engine/train/datasets/normalize';
import { MAX_RECORD_CHARS, parseDatasetText, type DatasetIssue, type FileType, type RawRecord } from '../../../main/engine/train/datasets/read';
import { firstInvalidUtf8, readDatasetFile } from '../../../main/engine/train/datasets/stream';
import { Rng } from '../../../main/engine/train/rng';

const dir = mkdtempSync(join(tmpdir(), 'lorasmith-ds-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(name: string, content: string | Buffer): string {
  const path = join(dir, `${n++}-${name}`);
  writeFileSync(path, content);
  return path;
}

function streamed(path: string, fileType?: FileType): { records: RawRecord[]; issues: DatasetIssue[] } {
  const records: RawRecord[] = [];
  const issues: DatasetIssue[] = [];
  readDatasetFile(path, { record: (r) => records.push(r), issue: (i) => issues.push(i) }, fileType);
  return { records, issues };
}

/** Records of varied sizes so lines cross the reader's 1 MiB chunks at every kind of place. */
function bigRecords(count: number, seed: number): { prompt: string; completion: string }[] {
  const rng = new Rng(seed);
  const words = ['sea', 'ship', 'ümlaut', '海', 'emoji 🚢', 'quote "x"', 'comma, here', 'tab\there'];
  return Array.from({ length: count }, (_, i) => ({
    prompt: `q${i} ` + Array.from({ length: 1 + Math.floor(rng.uniform(0, 400)) }, () => words[Math.floor(rng.uniform(0, words.length))]).join(' '),
    completion: ` a${i}`,
  }));
}

describe('reading in chunks gives what parsing the whole text gives', () => {
  const rows = bigRecords(2500, 7); // about 3 MB: several chunks
  const cases: [FileType, string][] = [
    ['jsonl', rows.map((r) => JSON.stringify(r)).join('\n') + '\n{"broken": \n'],
    ['json', '[\n' + rows.map((r) => '  ' + JSON.stringify(r, null, 1).replace(/\n/g, '\n  ')).join(',\n') + '\n]\n'],
    ['csv', 'prompt,completion\r\n' + rows.map((r) => `"${r.prompt.replace(/"/g, '""')}",${r.completion}`).join('\r\n') + '\r\nonly-one\r\n'],
    ['text', rows.map((r) => `${r.prompt}\n${r.completion}`).join('\n\n\n')],
  ];
  for (const [type, text] of cases) {
    it(type, () => {
      const whole = parseDatasetText(text, type);
      expect(whole.records.length).toBeGreaterThan(2000);
      expect(streamed(file(`x.${type}`, text), type)).toEqual({ records: whole.records, issues: whole.issues });
    });
  }
});

describe('what is not text is refused by its content, not its name', () => {
  it('a NUL byte: binary, whatever the extension', () => {
    const bytes = Buffer.concat([Buffer.from('{"text":"a"}\n'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x00, 0x00])]);
    for (const name of ['model.jsonl', 'weights.bin', 'notes.txt']) {
      expect(() => normalizeDataset(file(name, bytes))).toThrow(/line 2 holds a NUL byte .*binary file, not text/);
    }
  });

  it('invalid UTF-8 is named with its line, never replaced', () => {
    const bytes = Buffer.concat([Buffer.from('{"text":"one"}\n{"text":"two"}\n{"text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]);
    expect(() => normalizeDataset(file('latin1.jsonl', bytes))).toThrow(/line 3 is not valid UTF-8 \(byte 0xe9 at byte 12 of the line\); save the file as UTF-8/);
  });

  it('firstInvalidUtf8 agrees with a fatal TextDecoder on random bytes', () => {
    const rng = new Rng(11);
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for (let trial = 0; trial < 2000; trial++) {
      const length = 1 + Math.floor(rng.uniform(0, 12));
      const bytes = Uint8Array.from({ length }, () => (rng.uniform(0, 1) < 0.6 ? Math.floor(rng.uniform(0, 128)) : Math.floor(rng.uniform(128, 256))));
      let valid = true;
      try {
        decoder.decode(bytes);
      } catch {
        valid = false;
      }
      const at = firstInvalidUtf8(bytes);
      expect(at === -1, `bytes ${[...bytes].map((b) => b.toString(16)).join(' ')}`).toBe(valid);
      if (!valid) expect(() => decoder.decode(bytes.subarray(0, at))).not.toThrow();
    }
  });

  it('a UTF-8 BOM and CRLF line ends are read as text', () => {
    const path = file('bom.jsonl', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"text":"a"}\r\n{"text":"b"}\r\n')]));
    expect(streamed(path).records.map((r) => r.value)).toEqual([{ text: 'a' }, { text: 'b' }]);
  });
});

describe('records too long to train are skipped, not held', () => {
  it('a 3 Mi-character line among ordinary ones is an issue on its line; the rest is read', () => {
    const long = JSON.stringify({ text: 'x'.repeat(3 << 20) });
    const path = file('long.jsonl', `{"text":"a"}\n${long}\n{"text":"b"}\n`);
    const ds = normalizeDataset(path);
    expect(ds.examples.map((e) => e.line)).toEqual([1, 3]);
    expect(ds.report.issues).toEqual([{ line: 2, message: expect.stringMatching(/^the record is 3\.0 Mi characters; records longer than 1 Mi characters are skipped/) }]);
  });

  it('a file that is one huge record is an empty dataset, said so', () => {
    const path = file('one-line.jsonl', JSON.stringify({ prompt: 'p', completion: 'y'.repeat(MAX_RECORD_CHARS + 10) }));
    expect(() => normalizeDataset(path)).toThrow(/no valid records \(line 1: the record is 1\.0 Mi characters/);
  });
});

describe('the streamed normalized file', () => {
  it('is byte for byte what the in-memory writer makes, and its head reads back', () => {
    const rows = bigRecords(1200, 3);
    const path = file('pc.jsonl', rows.map((r) => JSON.stringify(r)).join('\n') + '\nnot json\n');
    const inMemory = join(dir, 'in-memory.jsonl');
    writeNormalizedDataset(inMemory, normalizeDataset(path));
    const streamedFile = join(dir, 'streamed.jsonl');
    const report = normalizeDatasetToFile(path, streamedFile);
    expect(readFileSync(streamedFile).equals(readFileSync(inMemory))).toBe(true);
    expect(report).toMatchObject({ valid: 1200, skipped: 1, format: 'prompt-completion' });
    const head = readDatasetHead(streamedFile, 5);
    expect(head.report).toEqual(report);
    expect(head.examples).toEqual(normalizeDataset(path).examples.slice(0, 5));
    expect(readDatasetHead(path, 3).examples.map((e) => e.line)).toEqual([1, 2, 3]);
  });
});
