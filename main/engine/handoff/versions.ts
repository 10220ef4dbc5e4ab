/**
 * The library versions an exported run is tested with: pinned in its requirements.txt and recorded in its run.json
 * (tested_versions). Its train.py records the versions it actually ran with (run_info.json's machine); the import
 * compares the two and warns where they differ, since a newer transformers or PEFT may train or save differently,
 * but imports all the same: the adapter is checked against the base on its own (preflight).
 */

/** transformers 5's from_pretrained(dtype=...); the versions the project's PEFT interoperability fixture was made with. */
export const TESTED_VERSIONS: Readonly<Record<string, string>> = {
  torch: '2.11.0',
  transformers: '5.17.0',
  peft: '0.21.0',
  accelerate: '1.15.0',
  deepspeed: '0.19.8',
};

/** The libraries every run imports; DeepSpeed only where the run was launched with a DeepSpeed config. */
const ALWAYS = ['torch', 'transformers', 'peft', 'accelerate'] as const;
const LABELS: Readonly<Record<string, string>> = { torch: 'torch', transformers: 'transformers', peft: 'PEFT', accelerate: 'accelerate', deepspeed: 'DeepSpeed' };

/** requirements.txt of an export: the tested versions, exactly. */
export function requirementsTxt(tested: Readonly<Record<string, string>> = TESTED_VERSIONS): string {
  const pin = (name: string) => `${name}==${tested[name]}`;
  return `# The versions train.py is tested with (run.json's tested_versions); lorasmith import-run warns where the run's differ.
${ALWAYS.map(pin).join('\n')}
safetensors>=0.6
# For the DeepSpeed configs only:
# ${pin('deepspeed')}
`;
}

export interface VersionDifference {
  readonly library: string;
  /** What the run recorded; null where run_info.json does not name it. */
  readonly ran: string | null;
  readonly tested: string;
}

/** A version without its local part: torch's '2.11.0+cu128' is the release 2.11.0 built for CUDA 12.8. */
const release = (version: string): string => version.split('+')[0]?.trim() ?? version;

/** The libraries the run ran with at another version than its export was tested with (DeepSpeed where it ran with it). */
export function versionDifferences(
  tested: Readonly<Record<string, string>>,
  ran: Readonly<Record<string, string | null>>,
  distributedType: string,
): VersionDifference[] {
  const names = [...ALWAYS, ...(/DEEPSPEED/i.test(distributedType) ? ['deepspeed'] : [])];
  const out: VersionDifference[] = [];
  for (const library of names) {
    const expected = tested[library];
    if (expected === undefined) continue;
    const actual = ran[library] ?? null;
    if (actual === null || release(actual) !== release(expected)) out.push({ library, ran: actual, tested: expected });
  }
  return out;
}

/** 'transformers 5.18.0 (tested 5.17.0)', or 'PEFT (not recorded; tested 0.21.0)'. */
export function describeDifference(d: VersionDifference): string {
  const label = LABELS[d.library] ?? d.library;
  return d.ran === null ? `${label} (not recorded; tested ${d.tested})` : `${label} ${d.ran} (tested ${d.tested})`;
}

/** The import's warning, or null where the run ran with the tested versions. */
export function versionWarning(differences: readonly VersionDifference[]): string | null {
  if (differences.length === 0) return null;
  return `this run trained with ${differences.map(describeDifference).join(', ')}, not the versions its export pins in requirements.txt; `
    + 'it was imported, but its training may differ from a run on the tested versions: check its curves, or train again after pip install -r requirements.txt';
}
