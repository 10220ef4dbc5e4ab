/**
 * Every probe of the reliability suite (test/probes/): what a hostile or clumsy user sends, and what must hold.
 * The suite writes bench/results/reliability.md from this list and the outcomes of a full run.
 */
export interface ProbeEntry {
  readonly area: 'Server' | 'Library' | 'User files' | 'Load checks' | 'Concurrency';
  /** What is sent or done. */
  readonly input: string;
  /** What must hold afterwards. */
  readonly holds: string;
}

export const PROBES = {
  'target-not-a-url': { area: 'Server', input: "request target 'http://[zz/' without the token", holds: '400 BAD_REQUEST; the server answers' },
  'target-not-a-url-token': { area: 'Server', input: "request target 'http://[zz/t/<token>/' carrying the token", holds: '400 BAD_REQUEST; the server answers' },
  'upgrade-not-a-url': { area: 'Server', input: "WebSocket upgrade to 'http://[zz/' (with and without the token)", holds: '400 on the upgrade; the server answers' },
  'path-bad-escape': { area: 'Server', input: "'/t/<token>/%ZZ' (malformed %-encoding)", holds: '400 naming the malformed escape; the server answers' },
  'ws-null': { area: 'Server', input: 'WebSocket message `null`', holds: 'INVALID_INPUT naming null; the socket stays open' },
  'ws-not-an-object': { area: 'Server', input: 'WebSocket messages `42`, `"x"`, `[]`, `{"id": {}}` and a binary frame', holds: 'INVALID_INPUT for each; the socket stays open' },
  'ws-over-limit': { area: 'Server', input: 'a 17 MiB WebSocket frame (a long chat message)', holds: 'socket closed with 1009; the server answers' },
  'ws-invalid-utf8': { area: 'Server', input: 'a text frame with invalid UTF-8', holds: 'socket closed with 1007; the server answers' },
  'token-no-cookie': { area: 'Server', input: 'page, asset and WebSocket requests with the token', holds: 'no Set-Cookie anywhere: the token reaches no other 127.0.0.1 service' },
  'two-servers-one-dir': { area: 'Library', input: 'a second `lorasmith serve` on the same data folder', holds: 'refused naming the holder (command, pid, since); the first keeps answering; nothing written' },
  'stale-lock': { area: 'Library', input: '`kill -9` of a server, then a new start on its data folder', holds: 'the dead holder\'s lock is taken over, and the start says so' },
  'out-not-empty': { area: 'User files', input: '`lorasmith train --out DIR` where DIR holds files', holds: 'refused with OUTPUT_NOT_EMPTY before training; DIR byte for byte as before; an empty DIR is used' },
  'out-dot': { area: 'User files', input: '`lorasmith train --out .` in a working directory with files', holds: 'refused with OUTPUT_NOT_EMPTY; the directory as before' },
  'temps-swept': { area: 'User files', input: '`kill -9` of `merge` and of `train` at their first rename into an export folder, then another export there', holds: 'the temps carry the one naming scheme and the next write sweeps them; the data folder\'s are swept at start-up (kill9 probes)' },
  'exports-not-empty': { area: 'User files', input: '`lorasmith merge`, `gguf merged` and `export-run` with an --out that holds a file', holds: 'each refused naming the folder; the folder byte for byte as before; no temp left' },
  'reduce-into-itself': { area: 'User files', input: '`lorasmith adapter reduce A --out A`', holds: 'refused with OUTPUT_NOT_EMPTY; adapter A as before' },
  'preview-50mb-line': { area: 'User files', input: 'a dataset with one 50 MB line among ordinary ones, imported and previewed', holds: 'the line is skipped with its reason on its line; the preview answers; the server answers' },
  'import-200mb-not-blocking': { area: 'User files', input: 'a 200 MB JSONL import while other requests come in', holds: 'every request during the import answered, each within 2 s (the file work runs in a worker thread); every record stored; no temp left' },
  'binary-dataset': { area: 'Load checks', input: 'binary files named .jsonl and .bin imported as datasets', holds: 'refused by content (NUL byte / not UTF-8); nothing written' },
  'invalid-utf8-line': { area: 'Load checks', input: 'a JSONL whose third line is not UTF-8', holds: 'refused naming line 3; nothing written' },
  'import-from-proc': { area: 'User files', input: 'importing /proc/self/status (its size says 0)', holds: 'the stored original is what was read, and the records are its records' },
  'symlink-outside': { area: 'Load checks', input: 'model folders with symlinks to a folder and to a file outside (copy and reference)', holds: 'refused with SYMLINK_OUTSIDE naming the link; nothing written; a hub cache snapshot imports' },
  'kill9-model-import': { area: 'Library', input: '`kill -9` during a model import (mid-copy, and at the rename into models/), then the next start', holds: 'the next start removes the temps and the folder without a row, and says so; no orphan; the import then succeeds' },
  'kill9-dataset-import': { area: 'Library', input: '`kill -9` at the rename into datasets/, then the next start', holds: 'the next start removes what was left; no dataset without its files' },
  'kill9-hub-download': { area: 'Library', input: '`kill -9` while a hub download streams its weights, and at the rename that moves the finished download into models/, then the next start', holds: 'the next start removes the unfinished download and says so; no model row, no model folder, no temp; the download then completes' },
  'kill9-adapter-import': { area: 'Library', input: '`kill -9` at the rename that moves an imported PEFT adapter, and then an imported run, into a new adapter\'s first version (their rows written by then), then the next start', holds: 'the next start removes the staged files; no adapter, run or version row and no folder is left (the rows are one transaction with the version); both imports then succeed' },
  'kill9-delete': { area: 'Library', input: '`kill -9` at the folder removal of each delete (a run, a version, an adapter, a dataset, a model), then the next start', holds: 'the next start finishes the delete and says so: no folder without a row, no row without its files, nothing else touched' },
  'kill9-training': { area: 'Library', input: '`kill -9` of the server while a run trains (two checkpoints written), then the next start', holds: 'the run is marked interrupted at its last checkpoint, no temp is left, and resuming it ends in a version with its files' },
  'kill9-version-commit': { area: 'Library', input: '`kill -9` at the rename that commits a finished run as a version, then the next start', holds: 'the run is interrupted, not a version folder without a row; resuming replaces its uncommitted output and commits one version' },
  'kill9-version-recorded': { area: 'Library', input: '`kill -9` just after the rename that moves a finished run\'s adapter into its version folder, before its row, then the next start', holds: 'the next start records the version from the commit\'s marker and says so: the run is done with its version, no folder without a row, no marker left' },
  'export-not-empty': { area: 'User files', input: "the app's PEFT and merged exports aimed at a folder that holds the user's file", holds: 'each refused naming the folder; the file as before; no temp; a new folder is written whole' },
  'store-full-progress': { area: 'Library', input: 'SQLITE_FULL while recording training progress', holds: 'run marked failed naming SQLITE_FULL; no version committed; handlers keep answering' },
  'nan-weights': { area: 'Load checks', input: 'a model whose weights hold a NaN, another an infinity, loaded for chat', holds: 'chat.load refused with NON_FINITE naming the tensor and index; no model answers afterwards' },
  'nan-adapter': { area: 'Load checks', input: '`lorasmith adapter check` of an adapter holding a NaN', holds: 'the check fails naming the tensor; a clean adapter passes' },
  'untied-no-head': { area: 'Load checks', input: 'an untied llama config whose checkpoint lacks lm_head.weight', holds: 'refused naming the missing head and tie_word_embeddings, not silently tied' },
  'empty-vocabulary': { area: 'Load checks', input: 'a tokenizer.json with an empty vocabulary', holds: 'refused with INVALID_TOKENIZER: the vocabulary is empty' },
  'inspect-million-layers': { area: 'Load checks', input: 'a config naming 1,000,000 layers: `lorasmith inspect`, and an import', holds: 'refused with INVALID_CONFIG (the checkpoint holds 5) before building anything per layer' },
  'dry-run-50mb-line': { area: 'Load checks', input: '`lorasmith train --dry-run` on a dataset with a 50 MB line, and on one that is only that line', holds: 'the line is skipped with its reason (exit 0), or the dataset is empty, said so (exit 1); no abort' },
  'train-start-validates-first': { area: 'Library', input: 'train.start with targets the model lacks, a missing dataset, a missing model', holds: 'refused naming the problem before any row: no empty adapter, no run' },
  'chat-load-failed': { area: 'Concurrency', input: 'chat.load of a broken model after a good one', holds: 'the load fails naming the problem; chat.generate refuses (no stale model answers)' },
  'chat-concurrent-mixes': { area: 'Concurrency', input: 'two concurrent chat.generate requests with different adapter mixes', holds: 'each reply equals the same request run alone' },
} as const satisfies Record<string, ProbeEntry>;

export type ProbeId = keyof typeof PROBES;
