/** Shared by the tests that compare a model's outputs before and after an adapter operation. */
import type { CausalLM } from '../../main/engine/models/types';
import { tokenIds } from '../../main/engine/models/weights';

/** The model's logits [B, T, V] for `ids` (B rows of T token ids), flattened; no tensor is left behind. */
export async function logitsOf(model: CausalLM, ids: readonly (readonly number[])[]): Promise<Float32Array> {
  const input = tokenIds(ids.flat(), [ids.length, ids[0]?.length ?? 0]);
  const out = model.forward(input);
  const data = (await out.data()) as Float32Array;
  input.dispose();
  out.dispose();
  return data;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}
