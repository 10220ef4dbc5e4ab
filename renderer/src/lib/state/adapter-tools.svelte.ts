import type { AdapterPreflight, AdapterSpectrum, AdapterVersion, Api, RankReduction } from '../../../../preload/contract';
import type { AdaptersState } from './adapters.svelte';
import { messageOf } from './errors';

/**
 * The Adapters view's tools: a PEFT folder checked against a base (the verdict first) and imported, and a version's
 * singular-value spectrum and rank reduction. Each part keeps its own message, shown next to its own fields.
 */
export class AdapterToolsState {
  #api: Api;
  #adapters: AdaptersState;
  #preflight = $state.raw<AdapterPreflight | null>(null);
  /** The folder and base the preflight above is about: a change of either makes it stale. */
  #checked = $state<{ path: string; modelId: string } | null>(null);
  #importBusy = $state(false);
  #importError = $state<string | null>(null);
  #imported = $state<string | null>(null);
  #spectrum = $state.raw<{ versionId: string; spectrum: AdapterSpectrum } | null>(null);
  #analysisBusy = $state(false);
  #analysisError = $state<string | null>(null);
  #reduction = $state.raw<{ from: string; version: AdapterVersion; report: RankReduction } | null>(null);

  constructor(api: Api, adapters: AdaptersState) {
    this.#api = api;
    this.#adapters = adapters;
  }

  get preflight(): AdapterPreflight | null { return this.#preflight; }
  get importBusy(): boolean { return this.#importBusy; }
  get importError(): string | null { return this.#importError; }
  /** What the last import made, in words. */
  get imported(): string | null { return this.#imported; }
  get analysisBusy(): boolean { return this.#analysisBusy; }
  get analysisError(): string | null { return this.#analysisError; }
  /** The last reduction: which version it reduced, the version it made, and what it cost. */
  get reduction(): { from: string; version: AdapterVersion; report: RankReduction } | null { return this.#reduction; }

  /** The preflight applies only to the folder and base it checked. */
  preflightFor(path: string, modelId: string): AdapterPreflight | null {
    return this.#checked?.path === path.trim() && this.#checked.modelId === modelId ? this.#preflight : null;
  }

  /** The spectrum of `versionId` if it was analysed. */
  spectrumOf(versionId: string | null): AdapterSpectrum | null {
    return versionId !== null && this.#spectrum?.versionId === versionId ? this.#spectrum.spectrum : null;
  }

  async check(path: string, modelId: string): Promise<AdapterPreflight | null> {
    const trimmed = path.trim();
    this.#preflight = null;
    this.#checked = null;
    this.#imported = null;
    if (trimmed === '') {
      this.#importError = 'Enter the PEFT adapter folder (it holds adapter_config.json and adapter_model.safetensors).';
      return null;
    }
    if (modelId === '') {
      this.#importError = 'Choose the base model to check the adapter against.';
      return null;
    }
    this.#importBusy = true;
    this.#importError = null;
    try {
      const preflight = await this.#api.invoke('adapters.checkPeft', { path: trimmed, modelId });
      this.#preflight = preflight;
      this.#checked = { path: trimmed, modelId };
      return preflight;
    } catch (error) {
      this.#importError = messageOf(error);
      return null;
    } finally {
      this.#importBusy = false;
    }
  }

  /** Imports the checked folder as a new version of `name` and shows it. */
  async importPeft(path: string, modelId: string, name: string): Promise<AdapterVersion | null> {
    if (name.trim() === '') {
      this.#importError = 'Enter a name for the imported adapter.';
      return null;
    }
    this.#importBusy = true;
    this.#importError = null;
    this.#imported = null;
    try {
      const done = await this.#api.invoke('adapters.importPeft', { path: path.trim(), modelId, name: name.trim() });
      this.#preflight = done.preflight;
      this.#checked = { path: path.trim(), modelId };
      this.#imported = `Imported as ${done.adapterName} v${done.version.version}.`;
      await this.#adapters.refresh();
      await this.#adapters.selectAdapter(done.version.adapterId);
      await this.#adapters.selectVersion(done.version.id);
      return done.version;
    } catch (error) {
      this.#importError = messageOf(error);
      return null;
    } finally {
      this.#importBusy = false;
    }
  }

  async analyze(versionId: string): Promise<AdapterSpectrum | null> {
    this.#analysisBusy = true;
    this.#analysisError = null;
    try {
      const spectrum = await this.#api.invoke('adapters.analyze', { versionId });
      this.#spectrum = { versionId, spectrum };
      return spectrum;
    } catch (error) {
      this.#analysisError = messageOf(error);
      return null;
    } finally {
      this.#analysisBusy = false;
    }
  }

  /** A new version at rank ≤ `rank`; the reduced one is selected and analysed, the source kept. */
  async reduce(versionId: string, rank: number): Promise<AdapterVersion | null> {
    if (!Number.isInteger(rank) || rank < 1) {
      this.#analysisError = `The rank to reduce to must be a whole number from 1, got ${String(rank)}.`;
      return null;
    }
    this.#analysisBusy = true;
    this.#analysisError = null;
    let made: AdapterVersion;
    try {
      const { version, report } = await this.#api.invoke('adapters.reduce', { versionId, rank });
      this.#reduction = { from: versionId, version, report };
      made = version;
      await this.#adapters.refresh();
      await this.#adapters.selectVersion(version.id);
    } catch (error) {
      this.#analysisError = messageOf(error);
      return null;
    } finally {
      this.#analysisBusy = false;
    }
    await this.analyze(made.id);
    return made;
  }
}
