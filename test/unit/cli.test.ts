import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli';
import { COMMANDS } from '../../main/cli/commands';

describe('lorasmith CLI', () => {
  it('--help lists every command with its summary', async () => {
    const { code, out } = await runCli(['--help']);
    expect(code).toBe(0);
    expect(out).toContain('Usage: lorasmith <command>');
    for (const command of COMMANDS) expect(out).toContain(command.name);
  });

  it('an unknown command is an error that names it', async () => {
    const { code, err } = await runCli(['frobnicate']);
    expect(code).toBe(2);
    expect(err).toContain("unknown command 'frobnicate'");
  });

  it('command names are unique', () => {
    const names = COMMANDS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
  });
});
