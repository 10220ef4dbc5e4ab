import type { Api, BaseModel, FoundGgufModel } from '../../../../preload/contract';
import { messageOf } from './errors';

/**
 * GGUF models already on this computer (Ollama, LM Studio, or a folder the user names): search, then add one to
 * the library where it lies. A model added is handed to `onModel`, and the list marks it as in the library.
 */
export class GgufFinderState {
  #api: Api;
  #onModel: (model: BaseModel) => void;
  #found = $state.raw<readonly FoundGgufModel[]>([]);
  #searched = $state.raw<readonly string[] | null>(null);
  #searching = $state(false);
  #adding = $state<string | null>(null);
  #error = $state<string | null>(null);

  constructor(api: Api, onModel: (model: BaseModel) => void) {
    this.#api = api;
    this.#onModel = onModel;
  }

  get found(): readonly FoundGgufModel[] { return this.#found; }
  /** The folders the last search looked in; null before any search. */
  get searched(): readonly string[] | null { return this.#searched; }
  get searching(): boolean { return this.#searching; }
  /** The path being added, while it is. */
  get adding(): string | null { return this.#adding; }
  get error(): string | null { return this.#error; }

  readonly usable = $derived(this.#found.filter((f) => f.problem === null));

  async find(folder?: string): Promise<void> {
    const chosen = folder?.trim();
    this.#searching = true;
    this.#error = null;
    try {
      const result = await this.#api.invoke('models.findGguf', chosen ? { folder: chosen } : {});
      this.#found = result.found;
      this.#searched = result.searched;
    } catch (error) {
      this.#error = messageOf(error);
    } finally {
      this.#searching = false;
    }
  }

  /** Adds a found model by reference; returns it, or null with `error` set. */
  async add(path: string, name?: string): Promise<BaseModel | null> {
    this.#adding = path;
    this.#error = null;
    try {
      const model = await this.#api.invoke('models.importGguf', { path, ...(name?.trim() ? { name: name.trim() } : {}) });
      this.#found = this.#found.map((f) => (f.path === path ? { ...f, modelId: model.id } : f));
      this.#onModel(model);
      return model;
    } catch (error) {
      this.#error = messageOf(error);
      return null;
    } finally {
      this.#adding = null;
    }
  }
}
