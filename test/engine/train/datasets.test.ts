import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../../../main/engine/train/datasets/dataset';
import {
  isNormalizedDatasetFile, normalizeDataset, readDataset, storedDatasetFile, writeNormalizedDataset,
} from '../../../main/engine/train/datasets/normalize';
import { parseDatasetText } from '../../../main/engine/train/datasets/read';
import { alpacaPrompt } from '../../../main/engine/train/datasets/formats';

const dir = mkdtempSync(join(tmpdir(), 'lorasmith-ds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('file types', () => {
  it('JSONL: one record per line, blank lines ignored, bad JSON reported by line', () => {
    const r = parseDatasetText('{"text":"a"}\n\n{"text": oops}\n{"text":"b"}\n', 'jsonl');
    expect(r.records.map((x) => x.line)).toEqual([1, 4]);
    expect(r.issues).toHaveLength(1);
    expect(r.issues[0]?.line).toBe(3);
    expect(r.issues[0]?.message).toMatch(/^invalid JSON/);
  });
  it('JSON array: each record knows the line it starts on, brackets inside strings do not confuse it', () => {
    const r = parseDatasetText('[\n  {"text": "a [x], {y}"},\n  {\n    "text": "b"\n  },\n  {"text":"c\\"]"}\n]', 'json');
    expect(r.records.map((x) => [x.line, (x.value as { text: string }).text])).toEqual([[2, 'a [x], {y}'], [3, 'b'], [6, 'c"]']]);
  });
  it('CSV: header, quoted fields with commas, quotes and newlines, CRLF; wrong field counts reported', () => {
    const r = parseDatasetText('prompt,completion\r\n"Hi, you","say ""yo""\nthen"\r\nonly one\r\nq,a\r\n', 'csv');
    expect(r.records).toEqual([
      { line: 2, value: { prompt: 'Hi, you', completion: 'say "yo"\nthen' } },
      { line: 5, value: { prompt: 'q', completion: 'a' } },
    ]);
    expect(r.issues).toEqual([{ line: 4, message: 'has 1 fields, the header has 2 (prompt, completion)' }]);
  });
  it('plain text: documents separated by blank lines', () => {
    const r = parseDatasetText('one\ntwo\n\n\nthree\n', 'text');
    expect(r.records).toEqual([{ line: 1, value: { text: 'one\ntwo' } }, { line: 5, value: { text: 'three' } }]);
  });
});

describe('formats, detection and validation', () => {
  it('detects prompt/completion and reports every bad record with line and reason', () => {
    const path = file('pc.jsonl', [
      '{"prompt":"2+2=","completion":"4"}',
      '{"prompt":"x","completion":5}',
      '{"prompt":"y","completion":""}',
      'not json',
      '["array"]',
      '{"prompt":"3+3=","completion":"6"}',
    ].join('\n'));
    const ds = loadDataset({ path });
    const report = ds.files[0];
    expect(report?.format).toBe('prompt-completion');
    expect(report?.records).toBe(6);
    expect(report?.valid).toBe(2);
    expect(report?.skipped).toBe(4);
    expect(report?.issues.map((i) => `${i.line}: ${i.message}`)).toEqual([
      "2: 'completion' must be a string, got number",
      "3: 'completion' must not be empty",
      expect.stringMatching(/^4: invalid JSON/),
      '5: must be an object, got an array',
    ]);
    expect(report?.contentHash).toBe(`sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`);
    expect(ds.train[0]).toEqual({ line: 1, kind: 'segments', segments: [{ text: '2+2=', train: false }, { text: '4', train: true }] });
  });

  it('alpaca: the instruction/input prompt, output trained; input optional', () => {
    const path = file('alpaca.json', JSON.stringify([{ instruction: 'Add', input: '1 2', output: '3' }, { instruction: 'Hi', output: 'hello' }, { instruction: 'x', output: 3 }], null, 1));
    const ds = loadDataset({ path });
    expect(ds.files[0]?.format).toBe('alpaca');
    expect(ds.train[0]).toMatchObject({ kind: 'segments', segments: [{ text: alpacaPrompt('Add', '1 2'), train: false }, { text: '3', train: true }] });
    expect(alpacaPrompt('Hi', '')).not.toContain('### Input');
    expect(ds.files[0]?.issues).toEqual([{ line: 11, message: "'output' must be a string, got number" }]);
  });

  it('chat messages: roles checked, an assistant turn required', () => {
    const path = file('chat.jsonl', [
      JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }),
      JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'bot', content: 'yo' }] }),
      JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
      JSON.stringify({ messages: [{ role: 'user', content: 3 }, { role: 'assistant', content: 'x' }] }),
      JSON.stringify({ messages: [] }),
    ].join('\n'));
    const ds = loadDataset({ path });
    expect(ds.files[0]?.issues.map((i) => `${i.line}: ${i.message}`)).toEqual([
      '2: messages[1].role must be one of system, user, assistant, got "bot"',
      "3: 'messages' has no assistant message to learn from",
      '4: messages[0].content must be a string, got number',
      "5: 'messages' must be a non-empty array of messages, got an array",
    ]);
    expect(ds.train).toEqual([{ line: 1, kind: 'chat', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }]);
  });

  it('ShareGPT conversations map human/gpt/system to chat roles', () => {
    const path = file('sg.jsonl', JSON.stringify({ conversations: [{ from: 'system', value: 's' }, { from: 'human', value: 'q' }, { from: 'gpt', value: 'a' }] }) + '\n' + JSON.stringify({ conversations: [{ from: 'robot', value: 'q' }] }));
    const ds = loadDataset({ path });
    expect(ds.files[0]?.format).toBe('sharegpt');
    expect(ds.train[0]).toMatchObject({ kind: 'chat', messages: [{ role: 'system' }, { role: 'user' }, { role: 'assistant', content: 'a' }] });
    expect(ds.files[0]?.issues[0]).toEqual({ line: 2, message: 'conversations[0].from must be one of system, human, user, gpt, assistant, got "robot"' });
  });

  it('raw text from a .txt file, and a CSV of prompt/completion', () => {
    expect(loadDataset({ path: file('raw.txt', 'hello world\n\nbye') }).train).toHaveLength(2);
    const csv = loadDataset({ path: file('d.csv', 'prompt,completion\nq,a\n') });
    expect(csv.files[0]?.format).toBe('prompt-completion');
  });

  it('a forced format validates every record against it', () => {
    const path = file('forced.jsonl', '{"text":"a","prompt":"p","completion":"c"}\n{"text":"b"}');
    const ds = loadDataset({ path, format: 'prompt-completion' });
    expect(ds.train).toHaveLength(1);
    expect(ds.files[0]?.issues).toEqual([{ line: 2, message: "'prompt' must be a string, got undefined" }]);
  });

  it('an unknown shape or an all-bad file is an error naming the file', () => {
    expect(() => loadDataset({ path: file('u.jsonl', '{"foo":1}') })).toThrow(/cannot tell the record format \(first record's keys: foo\)/);
    expect(() => loadDataset({ path: file('bad.jsonl', '{"text":""}') })).toThrow(/no valid text records \(line 1: 'text' must not be empty\)/);
  });

  it('an empty file says it is empty, whatever its type', () => {
    for (const [name, text] of [['empty.jsonl', ''], ['blank.jsonl', '\n\n  \n'], ['empty.txt', '']] as const) {
      expect(() => loadDataset({ path: file(name, text) })).toThrow(new RegExp(`${name} is empty: it holds no records`));
    }
  });
});

describe('train / validation split', () => {
  const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ text: `doc ${i}` })).join('\n');
  it('is seeded, disjoint and complete', () => {
    const path = file('split.jsonl', lines);
    const a = loadDataset({ path, valSplit: 0.2, seed: 1 });
    const b = loadDataset({ path, valSplit: 0.2, seed: 1 });
    const c = loadDataset({ path, valSplit: 0.2, seed: 2 });
    expect(a.val).toHaveLength(10);
    expect(a.train).toHaveLength(40);
    expect(a.val).toEqual(b.val);
    expect(a.val).not.toEqual(c.val);
    const all = [...a.train, ...a.val].map((e) => e.line).sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });
  it('or comes from a separate file; bad fractions are refused', () => {
    const path = file('t.jsonl', lines);
    const val = file('v.jsonl', '{"text":"held out"}');
    const ds = loadDataset({ path, valPath: val });
    expect(ds.train).toHaveLength(50);
    expect(ds.val).toHaveLength(1);
    expect(ds.files).toHaveLength(2);
    expect(() => loadDataset({ path, valSplit: 1 })).toThrow("valSplit must be in [0, 1) or 'auto', got 1");
    expect(loadDataset({ path, valSplit: 'auto' }).val).toHaveLength(5);
    expect(loadDataset({ path: val, valSplit: 'auto' }).val).toHaveLength(0);
  });
});

describe('the normalized file an import stores', () => {
  const source = () => file('mixed.jsonl', [
    JSON.stringify({ messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'q1' }, { role: 'assistant', content: 'a1' }] }),
    '{"messages": "oops"}',
    ...Array.from({ length: 11 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `q${i + 2}` }, { role: 'assistant', content: `a${i + 2}` }] })),
  ].join('\n'));

  it('reads back exactly what normalising the original gives: report, examples and the split', () => {
    const original = source();
    const normalized = normalizeDataset(original, { format: 'messages' });
    expect(normalized.report).toMatchObject({ path: original, fileType: 'jsonl', format: 'messages', records: 13, valid: 12, skipped: 1 });
    const stored = join(dir, 'normalized.jsonl');
    writeNormalizedDataset(stored, normalized);
    expect(isNormalizedDatasetFile(stored)).toBe(true);
    expect(isNormalizedDatasetFile(original)).toBe(false);
    expect(readDataset(stored)).toEqual(normalized);
    expect(readDataset(stored, { format: 'messages' })).toEqual(normalized);
    const fromStored = loadDataset({ path: stored, valSplit: 0.25, seed: 9 });
    const fromOriginal = loadDataset({ path: original, valSplit: 0.25, seed: 9 });
    expect(fromStored).toEqual(fromOriginal);
    expect(fromStored.val).toHaveLength(3);
  });

  it('refuses a format other than the one it was made with, and a damaged file, naming the line', () => {
    const stored = join(dir, 'normalized-2.jsonl');
    writeNormalizedDataset(stored, normalizeDataset(source()));
    expect(() => readDataset(stored, { format: 'text' })).toThrow(/holds messages records, not text/);
    const lines = readFileSync(stored, 'utf8').split('\n');
    writeFileSync(stored, [lines[0], lines[1], '{"line":3,"kind":"chat","messages":[{"role":"bot","content":"x"}]}', ...lines.slice(3)].join('\n'));
    expect(() => readDataset(stored)).toThrow(/normalized-2.jsonl:3: not a normalized example/);
    writeFileSync(stored, lines.slice(0, 4).join('\n'));
    expect(() => readDataset(stored)).toThrow(/promises 12 examples, the file holds 3/);
  });

  it('an older import without the header trains from its original file', () => {
    const original = source();
    const legacy = file('legacy-normalized.jsonl', normalizeDataset(original).examples.map((e) => JSON.stringify(e)).join('\n'));
    expect(storedDatasetFile({ normalized: legacy, original })).toBe(original);
    expect(storedDatasetFile({ normalized: null, original })).toBe(original);
    const current = join(dir, 'current.jsonl');
    writeNormalizedDataset(current, normalizeDataset(original));
    expect(storedDatasetFile({ normalized: current, original })).toBe(current);
  });
});
