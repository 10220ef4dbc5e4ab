import type { Api, CommandResult, Dataset, DatasetFormat } from '../../../../preload/contract';
import { messageOf } from './errors';

export type DatasetPreview = CommandResult<'datasets.preview'>;

export const PREVIEW_LIMIT = 20;

/** Datasets in the library, import, and a preview as a chosen model would see them. */
export class DatasetsState {
  #api: Api;
  #datasets = $state.raw<readonly Dataset[]>([]);
  #selectedId = $state<string | null>(null);
  #previewModelId = $state<string | null>(null);
  #preview = $state.raw<DatasetPreview | null>(null);
  #previewing = $state(false);
  #importing = $state(false);
  #error = $state<string | null>(null);
  #previewError = $state<string | null>(null);

  constructor(api: Api) {
    this.#api = api;
  }

  get datasets(): readonly Dataset[] { return this.#datasets; }
  get selectedId(): string | null { return this.#selectedId; }
  get previewModelId(): string | null { return this.#previewModelId; }
  get preview(): DatasetPreview | null { return this.#preview; }
  get previewing(): boolean { return this.#previewing; }
  get importing(): boolean { return this.#importing; }
  get error(): string | null { return this.#error; }
  get previewError(): string | null { return this.#previewError; }

  readonly selected = $derived(this.#datasets.find((d) => d.id === this.#selectedId) ?? null);

  byId(id: string | null): Dataset | undefined {
    return this.#datasets.find((d) => d.id === id);
  }

  async refresh(): Promise<void> {
    try {
      this.#datasets = await this.#api.invoke('datasets.list', {});
      this.#error = null;
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  async importFile(path: string, format?: DatasetFormat, name?: string): Promise<Dataset | null> {
    const trimmed = path.trim();
    if (trimmed === '') {
      this.#error = 'Enter the path of a dataset file (.jsonl, .json, .csv or .txt).';
      return null;
    }
    this.#importing = true;
    this.#error = null;
    try {
      const dataset = await this.#api.invoke('datasets.import', {
        path: trimmed, ...(format ? { format } : {}), ...(name?.trim() ? { name: name.trim() } : {}),
      });
      this.#datasets = [...this.#datasets.filter((d) => d.id !== dataset.id), dataset];
      this.#selectedId = dataset.id;
      this.#preview = null;
      if (this.#previewModelId) await this.loadPreview();
      return dataset;
    } catch (error) {
      this.#error = messageOf(error);
      this.#selectedId = null; // the details beside the error would be another dataset's, read as the failed import's
      this.#preview = null;
      return null;
    } finally {
      this.#importing = false;
    }
  }

  async select(id: string | null, modelId?: string | null): Promise<void> {
    this.#selectedId = id;
    if (modelId !== undefined) this.#previewModelId = modelId;
    this.#preview = null;
    await this.loadPreview();
  }

  async setPreviewModel(modelId: string | null): Promise<void> {
    this.#previewModelId = modelId;
    await this.loadPreview();
  }

  /** The preview needs a model: its tokenizer counts tokens and its chat template renders the records. */
  async loadPreview(): Promise<void> {
    const id = this.#selectedId;
    const modelId = this.#previewModelId;
    if (!id || !modelId) return;
    this.#previewing = true;
    this.#previewError = null;
    try {
      const preview = await this.#api.invoke('datasets.preview', { id, modelId, limit: PREVIEW_LIMIT });
      // A slower answer for a previous choice must not replace the current one.
      if (this.#selectedId === id && this.#previewModelId === modelId) this.#preview = preview;
    } catch (error) {
      this.#previewError = messageOf(error);
    } finally {
      this.#previewing = false;
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.#api.invoke('datasets.delete', { id });
      this.#datasets = this.#datasets.filter((d) => d.id !== id);
      if (this.#selectedId === id) {
        this.#selectedId = null;
        this.#preview = null;
      }
    } catch (error) {
      this.#error = messageOf(error);
    }
  }
}
