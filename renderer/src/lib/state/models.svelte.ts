import type { Api, BaseModel, LinearModuleInfo } from '../../../../preload/contract';
import { messageOf } from './errors';
import { GgufFinderState } from './gguf-finder.svelte';
import { HubDownloadState } from './hub-download.svelte';
import { mapOf, withEntry } from '../immutable';

/** Base models in the library, their linear modules, import and delete. */
export class ModelsState {
  #api: Api;
  #models = $state.raw<readonly BaseModel[]>([]);
  #modules = $state.raw<ReadonlyMap<string, readonly LinearModuleInfo[]>>(mapOf());
  #selectedId = $state<string | null>(null);
  #importing = $state(false);
  #error = $state<string | null>(null);

  /** Downloads from the Hugging Face hub; a finished one joins the list, selected. */
  readonly hub: HubDownloadState;
  /** GGUF models already on this computer; one added joins the list, selected. */
  readonly gguf: GgufFinderState;

  constructor(api: Api) {
    this.#api = api;
    const added = (model: BaseModel) => {
      this.#models = [...this.#models.filter((m) => m.id !== model.id), model];
      void this.select(model.id);
    };
    this.hub = new HubDownloadState(api, added);
    this.gguf = new GgufFinderState(api, added);
  }

  get models(): readonly BaseModel[] { return this.#models; }
  get selectedId(): string | null { return this.#selectedId; }
  get importing(): boolean { return this.#importing; }
  get error(): string | null { return this.#error; }

  readonly selected = $derived(this.#models.find((m) => m.id === this.#selectedId) ?? null);

  modulesOf(modelId: string): readonly LinearModuleInfo[] | undefined {
    return this.#modules.get(modelId);
  }

  byId(id: string | null): BaseModel | undefined {
    return this.#models.find((m) => m.id === id);
  }

  async refresh(): Promise<void> {
    try {
      this.#models = await this.#api.invoke('models.list', {});
      if (this.#selectedId && !this.byId(this.#selectedId)) this.#selectedId = null;
      this.#error = null;
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  async select(id: string | null): Promise<void> {
    this.#selectedId = id;
    if (id) await this.loadModules(id);
  }

  async loadModules(modelId: string): Promise<readonly LinearModuleInfo[]> {
    const cached = this.#modules.get(modelId);
    if (cached) return cached;
    try {
      const modules = await this.#api.invoke('models.modules', { id: modelId });
      this.#modules = withEntry(this.#modules, modelId, modules);
      return modules;
    } catch (error) {
      this.#error = messageOf(error);
      return [];
    }
  }

  /** Imports a Hugging Face folder; returns the new model, or null with `error` set. */
  async importFolder(path: string, mode: 'copy' | 'reference' = 'copy', name?: string): Promise<BaseModel | null> {
    const trimmed = path.trim();
    if (trimmed === '') {
      this.#error = 'Enter the path of a Hugging Face model folder (with config.json and *.safetensors).';
      return null;
    }
    this.#importing = true;
    this.#error = null;
    try {
      const model = await this.#api.invoke('models.import', { path: trimmed, mode, ...(name?.trim() ? { name: name.trim() } : {}) });
      this.#models = [...this.#models.filter((m) => m.id !== model.id), model];
      await this.select(model.id);
      return model;
    } catch (error) {
      this.#error = messageOf(error);
      this.#selectedId = null; // the details beside the error would be another model's, read as the failed import's
      return null;
    } finally {
      this.#importing = false;
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.#api.invoke('models.delete', { id });
      this.#models = this.#models.filter((m) => m.id !== id);
      if (this.#selectedId === id) this.#selectedId = null;
    } catch (error) {
      this.#error = messageOf(error);
    }
  }
}
