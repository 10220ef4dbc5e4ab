import type { Adapter, AdapterVersion, Api, GgufExport, MetricPoint, TrainingRun } from '../../../../preload/contract';
import { flattenLineage, lineageTree, type LineageNode } from '../lineage';
import { messageOf } from './errors';
import { mapOf } from '../immutable';

export type ExportKind = 'peft' | 'merged';
/** For Ollama / llama.cpp: the adapter as a GGUF LoRA beside its base, or merged into one GGUF model. */
export type GgufExportKind = 'adapter' | 'merged';
export type GgufType = 'F16' | 'BF16' | 'Q8_0';

/** Adapters, their versions as a lineage, each version's curves, export and delete. */
export class AdaptersState {
  #api: Api;
  #adapters = $state.raw<readonly Adapter[]>([]);
  #versions = $state.raw<ReadonlyMap<string, readonly AdapterVersion[]>>(mapOf());
  #runs = $state.raw<readonly TrainingRun[]>([]);
  #selectedAdapterId = $state<string | null>(null);
  #selectedVersionId = $state<string | null>(null);
  #metrics = $state.raw<readonly MetricPoint[]>([]);
  #busy = $state(false);
  #error = $state<string | null>(null);
  #lastExport = $state<string | null>(null);
  #lastGguf = $state.raw<GgufExport | null>(null);
  #lastImport = $state<string | null>(null);
  /** The last import's warnings (library versions other than the export's): shown beside its message. */
  #importWarnings = $state<readonly string[]>([]);
  /** An export's failure, shown next to the export field (not with the list's errors). */
  #exportError = $state<string | null>(null);

  constructor(api: Api) {
    this.#api = api;
  }

  get adapters(): readonly Adapter[] { return this.#adapters; }
  get selectedAdapterId(): string | null { return this.#selectedAdapterId; }
  get selectedVersionId(): string | null { return this.#selectedVersionId; }
  get metrics(): readonly MetricPoint[] { return this.#metrics; }
  get busy(): boolean { return this.#busy; }
  get error(): string | null { return this.#error; }
  get lastExport(): string | null { return this.#lastExport; }
  /** The last GGUF export of the selected version: its folder, files and the commands that run it. */
  get lastGguf(): GgufExport | null { return this.#lastGguf; }
  /** What the last "Import a run" made, in words. */
  get lastImport(): string | null { return this.#lastImport; }
  get importWarnings(): readonly string[] { return this.#importWarnings; }
  get exportError(): string | null { return this.#exportError; }

  readonly selectedAdapter = $derived(this.#adapters.find((a) => a.id === this.#selectedAdapterId) ?? null);
  readonly lineage = $derived<readonly LineageNode[]>(
    this.#selectedAdapterId ? flattenLineage(lineageTree(this.#versions.get(this.#selectedAdapterId) ?? [])) : [],
  );
  readonly selectedVersion = $derived(this.lineage.find((n) => n.version.id === this.#selectedVersionId)?.version ?? null);
  /** The run that produced the selected version: its settings and curves. */
  readonly selectedRun = $derived(this.#runs.find((r) => r.adapterVersionId === this.#selectedVersionId) ?? null);

  /** The selected adapter's runs that stopped before making a version: each can be resumed or deleted. */
  readonly stoppedRuns = $derived(this.#runs.filter((r) =>
    r.adapterId === this.#selectedAdapterId && (r.status === 'cancelled' || r.status === 'interrupted')));

  versionsOf(adapterId: string): readonly AdapterVersion[] {
    return this.#versions.get(adapterId) ?? [];
  }

  /** Every finished version of every adapter, for the chat's adapter switcher. */
  readonly allVersions = $derived<readonly { adapter: Adapter; version: AdapterVersion }[]>(
    this.#adapters.flatMap((adapter) =>
      (this.#versions.get(adapter.id) ?? []).filter((v) => v.status === 'ok').map((version) => ({ adapter, version })),
    ),
  );

  versionLabel(versionId: string): string {
    for (const adapter of this.#adapters) {
      const version = this.#versions.get(adapter.id)?.find((v) => v.id === versionId);
      if (version) return `${adapter.name} v${version.version}`;
    }
    return versionId;
  }

  async refresh(): Promise<void> {
    try {
      const [adapters, runs] = await Promise.all([
        this.#api.invoke('adapters.list', {}),
        this.#api.invoke('runs.list', {}),
      ]);
      const lists = await Promise.all(adapters.map((a) => this.#api.invoke('adapters.versions', { adapterId: a.id })));
      this.#adapters = adapters;
      this.#runs = runs;
      this.#versions = mapOf(adapters.map((a, i) => [a.id, lists[i] ?? []] as const));
      this.#error = null;
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  async selectAdapter(adapterId: string | null): Promise<void> {
    this.#selectedAdapterId = adapterId;
    const newest = this.lineage.at(-1)?.version ?? null;
    await this.selectVersion(newest?.id ?? null);
  }

  async selectVersion(versionId: string | null): Promise<void> {
    this.#selectedVersionId = versionId;
    this.#metrics = [];
    this.#lastExport = null;
    this.#lastGguf = null;
    this.#exportError = null;
    const run = this.selectedRun;
    if (!run) return;
    try {
      const metrics = await this.#api.invoke('runs.metrics', { runId: run.id });
      if (this.#selectedVersionId === versionId) this.#metrics = metrics;
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  async exportVersion(kind: ExportKind, versionId: string, destination: string): Promise<string | null> {
    this.#lastExport = null; // an earlier "Exported to" is stale once another export is asked for
    if (destination.trim() === '') {
      this.#exportError = 'Enter a destination folder for the export: a folder that does not exist yet, where it is written whole.';
      return null;
    }
    this.#busy = true;
    this.#exportError = null;
    try {
      const command = kind === 'peft' ? 'adapters.exportPeft' : 'adapters.exportMerged';
      const { path } = await this.#api.invoke(command, { versionId, destination: destination.trim() });
      this.#lastExport = path;
      return path;
    } catch (error) {
      this.#exportError = messageOf(error);
      return null;
    } finally {
      this.#busy = false;
    }
  }

  /** Imports the output of a run trained with transformers + PEFT (an exported run) as a new version, and shows it. */
  async importRun(path: string, adapterName: string): Promise<void> {
    if (path.trim() === '') {
      this.#error = 'Enter the output folder the exported run\'s train.py wrote.';
      return;
    }
    this.#busy = true;
    this.#error = null;
    this.#lastImport = null;
    this.#importWarnings = [];
    try {
      const done = await this.#api.invoke('runs.importResult', { path: path.trim(), ...(adapterName.trim() ? { adapterName: adapterName.trim() } : {}) });
      this.#lastImport = `Imported as ${done.adapterName} v${done.version.version}, trained on ${done.trainedOn}.`;
      this.#importWarnings = done.warnings;
      await this.refresh();
      this.#selectedAdapterId = done.version.adapterId;
      await this.selectVersion(done.version.id);
    } catch (error) {
      this.#error = messageOf(error);
    } finally {
      this.#busy = false;
    }
  }

  /** Deletes the adapter with every version and run: also how an adapter left with no version goes. */
  async deleteAdapter(adapterId: string): Promise<void> {
    this.#busy = true;
    this.#error = null;
    try {
      await this.#api.invoke('adapters.delete', { adapterId });
      if (this.#selectedAdapterId === adapterId) {
        this.#selectedAdapterId = null;
        this.#selectedVersionId = null;
      }
      await this.refresh();
    } catch (error) {
      this.#error = messageOf(error);
    } finally {
      this.#busy = false;
    }
  }

  async exportGguf(versionId: string, destination: string, kind: GgufExportKind, type: GgufType): Promise<GgufExport | null> {
    if (destination.trim() === '') {
      this.#error = 'Enter a new folder to write the GGUF export into.';
      return null;
    }
    this.#busy = true;
    this.#error = null;
    try {
      const result = await this.#api.invoke('adapters.exportGguf', { versionId, destination: destination.trim(), kind, type });
      this.#lastGguf = result;
      return result;
    } catch (error) {
      this.#error = messageOf(error);
      return null;
    } finally {
      this.#busy = false;
    }
  }

  async deleteVersion(versionId: string): Promise<void> {
    this.#busy = true;
    try {
      await this.#api.invoke('adapters.deleteVersion', { versionId });
      if (this.#selectedVersionId === versionId) this.#selectedVersionId = null;
      await this.refresh();
    } catch (error) {
      this.#error = messageOf(error);
    } finally {
      this.#busy = false;
    }
  }
}
