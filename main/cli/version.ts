/** The version of this Lorasmith (package.json's): what --version prints and a remote engine's handshake compares. */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
