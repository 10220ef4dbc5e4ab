/**
 * Writes the sample datasets in resources/samples from the hand-written material in sample-content.ts:
 *
 *   verily-chat.jsonl     chat messages      every assistant reply starts "Verily," and ends "Amen."
 *   answer-format.jsonl   prompt/completion  "Question: ...\n" -> "Answer: ... .\nThat is all."
 *   shouting-chat.jsonl   chat messages      every assistant reply is in capitals and ends with "!"
 *   pirate-talk.txt       raw text           paragraphs in a pirate voice (blank line between records)
 *
 *   npx tsx scripts/starter/make-samples.ts [out-dir]
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../main/engine/train/rng';
import { PIRATE_ENDINGS, PIRATE_MIDDLES, PIRATE_OPENINGS, QUESTIONS } from './sample-content';

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function pick<T>(items: readonly T[], rng: Rng): T {
  return items[Math.floor(rng.next() * items.length)] as T;
}

export function verilyChat(): object[] {
  return QUESTIONS.map(([question, answer]) => ({
    messages: [
      { role: 'user', content: question },
      { role: 'assistant', content: `Verily, ${lowerFirst(answer)}. Amen.` },
    ],
  }));
}

export function answerFormat(): object[] {
  return QUESTIONS.map(([question, answer]) => ({
    prompt: `Question: ${question}\n`,
    completion: `Answer: ${answer}.\nThat is all.`,
  }));
}

export function shoutingChat(): object[] {
  return QUESTIONS.map(([question, answer]) => ({
    messages: [
      { role: 'user', content: question },
      { role: 'assistant', content: `${answer.toUpperCase()}!` },
    ],
  }));
}

export function pirateParagraphs(count: number, seed: number): string[] {
  const rng = new Rng(seed);
  const paragraphs: string[] = [];
  for (let i = 0; i < count; i++) {
    const middles = rng.shuffle(PIRATE_MIDDLES).slice(0, 2 + Math.floor(rng.next() * 2));
    paragraphs.push([pick(PIRATE_OPENINGS, rng), ...middles, pick(PIRATE_ENDINGS, rng)].join(' '));
  }
  return paragraphs;
}

function writeAtomically(path: string, text: string): void {
  writeFileSync(path + '.tmp', text);
  renameSync(path + '.tmp', path);
}

export function writeSamples(outDir: string): void {
  mkdirSync(outDir, { recursive: true });
  const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  writeAtomically(join(outDir, 'verily-chat.jsonl'), jsonl(verilyChat()));
  writeAtomically(join(outDir, 'answer-format.jsonl'), jsonl(answerFormat()));
  writeAtomically(join(outDir, 'shouting-chat.jsonl'), jsonl(shoutingChat()));
  writeAtomically(join(outDir, 'pirate-talk.txt'), pirateParagraphs(80, 7).join('\n\n') + '\n');
}

if (process.argv[1]?.endsWith('make-samples.ts')) writeSamples(process.argv[2] ?? 'resources/samples');
