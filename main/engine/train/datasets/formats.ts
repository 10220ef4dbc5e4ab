/**
 * Record formats and their validation. Each valid record becomes an Example: either text segments marked as
 * trained or not (prompt/completion, alpaca, raw text), or chat messages rendered later with the model's template.
 */
import type { DatasetIssue, RawRecord } from './read';

/** As the contract names them: 'messages' is the OpenAI-style chat layout ({messages: [{role, content}]}). */
export type DatasetFormat = 'prompt-completion' | 'alpaca' | 'messages' | 'sharegpt' | 'text';
export const DATASET_FORMATS: readonly DatasetFormat[] = ['prompt-completion', 'alpaca', 'messages', 'sharegpt', 'text'];

export type ChatRole = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
}

export interface TextSegment {
  readonly text: string;
  /** Whether these tokens are loss targets (completion / response) or context only (prompt). */
  readonly train: boolean;
}

export type Example =
  | { readonly line: number; readonly kind: 'segments'; readonly segments: readonly TextSegment[] }
  | { readonly line: number; readonly kind: 'chat'; readonly messages: readonly ChatMessage[] };

/** The format a record's keys indicate, or null. */
export function formatOfRecord(value: unknown): DatasetFormat | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const keys = new Set(Object.keys(value));
  if (keys.has('messages')) return 'messages';
  if (keys.has('conversations')) return 'sharegpt';
  if (keys.has('instruction') && keys.has('output')) return 'alpaca';
  if (keys.has('prompt') && keys.has('completion')) return 'prompt-completion';
  if (keys.has('text')) return 'text';
  return null;
}

/** The most common recognised format among the first records. */
export function detectFormat(records: readonly RawRecord[]): DatasetFormat | null {
  const counts = new Map<DatasetFormat, number>();
  for (const r of records.slice(0, 200)) {
    const f = formatOfRecord(r.value);
    if (f) counts.set(f, (counts.get(f) ?? 0) + 1);
  }
  let best: DatasetFormat | null = null;
  for (const [f, n] of counts) if (best === null || n > (counts.get(best) ?? 0)) best = f;
  return best;
}

type Check = { ok: true; example: Example } | { ok: false; message: string };

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value === '' ? 'an empty string' : 'a string';
  return typeof value;
}

function field(record: Record<string, unknown>, key: string, options: { optional?: boolean; allowEmpty?: boolean } = {}): string | { error: string } {
  const value = record[key];
  if (value === undefined && options.optional) return '';
  if (typeof value !== 'string') return { error: `'${key}' must be a string, got ${describe(value)}` };
  if (!options.allowEmpty && value.trim() === '') return { error: `'${key}' must not be empty` };
  return value;
}

const ALPACA_PREAMBLE = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.';
const ALPACA_PREAMBLE_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.';

/** The Stanford Alpaca prompt, as most alpaca fine-tunes use it. */
export function alpacaPrompt(instruction: string, input: string): string {
  return input.trim() === ''
    ? `${ALPACA_PREAMBLE}\n\n### Instruction:\n${instruction}\n\n### Response:\n`
    : `${ALPACA_PREAMBLE_INPUT}\n\n### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`;
}

const ROLES: readonly ChatRole[] = ['system', 'user', 'assistant'];
const SHAREGPT_ROLES: Readonly<Record<string, ChatRole>> = { system: 'system', human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant' };

function checkMessages(list: unknown, key: string, roleKey: string, contentKey: string, roleMap: (r: string) => ChatRole | undefined): ChatMessage[] | { error: string } {
  if (!Array.isArray(list) || list.length === 0) return { error: `'${key}' must be a non-empty array of messages, got ${describe(list)}` };
  const messages: ChatMessage[] = [];
  for (const [i, m] of list.entries()) {
    if (typeof m !== 'object' || m === null) return { error: `${key}[${i}] must be an object with '${roleKey}' and '${contentKey}', got ${describe(m)}` };
    const msg = m as Record<string, unknown>;
    const rawRole = msg[roleKey];
    const role = typeof rawRole === 'string' ? roleMap(rawRole) : undefined;
    if (!role) {
      const allowed = key === 'messages' ? ROLES.join(', ') : Object.keys(SHAREGPT_ROLES).join(', ');
      return { error: `${key}[${i}].${roleKey} must be one of ${allowed}, got ${JSON.stringify(rawRole)}` };
    }
    const content = msg[contentKey];
    if (typeof content !== 'string') return { error: `${key}[${i}].${contentKey} must be a string, got ${describe(content)}` };
    messages.push({ role, content });
  }
  if (!messages.some((m) => m.role === 'assistant')) return { error: `'${key}' has no assistant message to learn from` };
  return messages;
}

function checkRecord(record: RawRecord, format: DatasetFormat): Check {
  const value = record.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: `must be an object, got ${describe(value)}` };
  }
  const r = value as Record<string, unknown>;
  const line = record.line;
  switch (format) {
    case 'prompt-completion': {
      const prompt = field(r, 'prompt', { allowEmpty: true });
      const completion = field(r, 'completion');
      if (typeof prompt !== 'string') return { ok: false, message: prompt.error };
      if (typeof completion !== 'string') return { ok: false, message: completion.error };
      return { ok: true, example: { line, kind: 'segments', segments: [{ text: prompt, train: false }, { text: completion, train: true }] } };
    }
    case 'alpaca': {
      const instruction = field(r, 'instruction');
      const input = field(r, 'input', { optional: true, allowEmpty: true });
      const output = field(r, 'output');
      for (const f of [instruction, input, output]) if (typeof f !== 'string') return { ok: false, message: f.error };
      const prompt = alpacaPrompt(instruction as string, input as string);
      return { ok: true, example: { line, kind: 'segments', segments: [{ text: prompt, train: false }, { text: output as string, train: true }] } };
    }
    case 'text': {
      const text = field(r, 'text');
      if (typeof text !== 'string') return { ok: false, message: text.error };
      return { ok: true, example: { line, kind: 'segments', segments: [{ text, train: true }] } };
    }
    case 'messages': {
      const messages = checkMessages(r.messages, 'messages', 'role', 'content', (x) => (ROLES as readonly string[]).includes(x) ? (x as ChatRole) : undefined);
      if (!Array.isArray(messages)) return { ok: false, message: messages.error };
      return { ok: true, example: { line, kind: 'chat', messages } };
    }
    case 'sharegpt': {
      const messages = checkMessages(r.conversations, 'conversations', 'from', 'value', (x) => SHAREGPT_ROLES[x]);
      if (!Array.isArray(messages)) return { ok: false, message: messages.error };
      return { ok: true, example: { line, kind: 'chat', messages } };
    }
  }
}

export interface FormatResult {
  readonly examples: Example[];
  readonly issues: DatasetIssue[];
}

/** Validates every record against the format; each bad one becomes an issue naming its line and the problem. */
export function toExamples(records: readonly RawRecord[], format: DatasetFormat): FormatResult {
  const examples: Example[] = [];
  const issues: DatasetIssue[] = [];
  for (const record of records) {
    const check = checkRecord(record, format);
    if (check.ok) examples.push(check.example);
    else issues.push({ line: record.line, message: check.message });
  }
  return { examples, issues };
}
