/** Runs `lorasmith` in this process (main/cli/index's main), collecting what it prints. */
import { main } from '../../main/cli/index';

export async function runCli(argv: readonly string[], signal?: AbortSignal): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t + '\n'), err: (t) => (err += t + '\n'), ...(signal ? { signal } : {}) });
  return { code, out, err };
}
