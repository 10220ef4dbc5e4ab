/**
 * How close a reply comes to a target reply in words, for the tests that check a trained adapter answers its training
 * prompts with their content: counted on the text alone, knowing nothing of the engine.
 */

/** Lower-case words. */
const words = (text: string) => text.toLowerCase().match(/[a-z]+/g) ?? [];

/** The share of the target's words the reply contains (each word counted as often as the target has it). */
export function wordOverlap(reply: string, target: string): number {
  const left = new Map<string, number>();
  for (const w of words(reply)) left.set(w, (left.get(w) ?? 0) + 1);
  const wanted = words(target);
  let hit = 0;
  for (const w of wanted) {
    const n = left.get(w) ?? 0;
    if (n > 0) {
      hit++;
      left.set(w, n - 1);
    }
  }
  return hit / wanted.length;
}
