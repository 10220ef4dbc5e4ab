/**
 * The app's state, wired to one `api`. The shell builds it once with the real transport; tests build it with a fake.
 */
import type { Api, TrainingRun } from '../../../../preload/contract';
import { AdapterToolsState } from './adapter-tools.svelte';
import { AdaptersState } from './adapters.svelte';
import { AppState } from './app.svelte';
import { ChatState } from './chat.svelte';
import { ComparisonsState } from './comparisons.svelte';
import { DatasetsState } from './datasets.svelte';
import { FirstRunState } from './first-run.svelte';
import { ModelsState } from './models.svelte';
import { SettingsState } from './settings.svelte';
import { TrainingState } from './training.svelte';
import { WizardState } from './wizard.svelte';

export class RootState {
  readonly app: AppState;
  readonly settings: SettingsState;
  readonly models: ModelsState;
  readonly datasets: DatasetsState;
  readonly adapters: AdaptersState;
  readonly adapterTools: AdapterToolsState;
  readonly training: TrainingState;
  readonly wizard: WizardState;
  readonly chat: ChatState;
  readonly comparisons: ComparisonsState;
  readonly firstRun: FirstRunState;

  constructor(api: Api) {
    this.app = new AppState(api);
    this.settings = new SettingsState(api);
    this.models = new ModelsState(api);
    this.datasets = new DatasetsState(api);
    this.adapters = new AdaptersState(api);
    this.adapterTools = new AdapterToolsState(api, this.adapters);
    this.training = new TrainingState(api);
    this.wizard = new WizardState(api, this.models);
    this.chat = new ChatState(api, (adapters) => (adapters.length === 0 ? 'Base model'
      : adapters.map((a) => `${this.adapters.versionLabel(a.versionId)} ×${a.scale.toFixed(2)}`).join(' + ')));
    this.comparisons = new ComparisonsState(api);
    this.firstRun = new FirstRunState(api);
    // A finished run becomes an adapter version: the library shows it without a manual refresh.
    this.training.onFinished((run) => {
      void this.adapters.refresh();
      const label = run.status === 'done' ? 'finished' : run.status;
      this.app.notify(run.status === 'failed' ? 'error' : 'info', `Training run ${label}${run.error ? `: ${run.error}` : ''}.`);
      void this.#afterGuidedRun(run);
    });
  }

  async load(): Promise<void> {
    await Promise.all([
      this.app.load(), this.settings.load(), this.models.refresh(), this.datasets.refresh(),
      this.adapters.refresh(), this.training.refresh(), this.firstRun.load(), this.comparisons.refresh(),
    ]);
    this.wizard.reset(this.settings.settings.defaults);
    const first = this.models.models[0];
    if (first && !this.datasets.previewModelId) await this.datasets.setPreviewModel(first.id);
  }

  /** Open the wizard on a run set-up and go there. */
  async startWizardFrom(adapterId: string, versionId: string, mode: 'continue' | 'duplicate'): Promise<void> {
    const adapter = this.adapters.adapters.find((a) => a.id === adapterId);
    const version = this.adapters.versionsOf(adapterId).find((v) => v.id === versionId);
    if (!adapter || !version) return;
    await this.wizard.prefill(adapter, version, mode);
    this.app.go('train');
  }

  /** Start the first run's guided fine-tune, follow it live, and show the training view. */
  async startGuided(): Promise<void> {
    const name = this.firstRun.adapterName();
    const run = await this.firstRun.start();
    if (!run) return;
    this.training.track(run, name);
    this.app.go('runs');
  }

  /**
   * The guided run's ending: the chat preview with the base model and the new adapter version side by side, the
   * sample's prompt filled in, greedy decoding so the learned form shows plainly.
   */
  async #afterGuidedRun(run: TrainingRun): Promise<void> {
    const sample = this.firstRun.finished(run);
    if (!sample || run.status !== 'done' || !run.adapterVersionId) return;
    await this.adapters.refresh();
    await this.chat.load(run.baseModelId);
    if (this.chat.modelId !== run.baseModelId) return;
    this.chat.compareWithBase(run.adapterVersionId);
    this.chat.sampling = { ...this.chat.sampling, temperature: 0 };
    this.chat.draft = sample.tryPrompt;
    this.app.go('chat');
  }

  /** Continue a stopped run (from the Training view or its adapter) and follow it in the training view. */
  async resumeRun(runId: string): Promise<void> {
    if (await this.training.resume(runId)) {
      this.app.go('runs');
      void this.adapters.refresh();
    } else this.app.notify('error', `Could not resume the run: ${this.training.error ?? 'unknown reason'}`);
  }

  /** Deletes a stopped run: its adapter's list of unfinished runs (Library, Adapters) forgets it too. */
  async deleteRun(runId: string): Promise<void> {
    await this.training.deleteRun(runId);
    await this.adapters.refresh();
  }

  /** Deletes an adapter with its versions and runs: the Training view's list forgets those runs too. */
  async deleteAdapter(adapterId: string): Promise<void> {
    await this.adapters.deleteAdapter(adapterId);
    await this.training.refresh();
  }

  /** A finished run's adapter version in the chat, answering next to its base model. */
  async openInChat(run: TrainingRun): Promise<void> {
    if (!run.adapterVersionId) return;
    await this.adapters.refresh();
    await this.chat.load(run.baseModelId);
    if (this.chat.modelId !== run.baseModelId) return;
    this.chat.compareWithBase(run.adapterVersionId);
    this.app.go('chat');
  }

  /** Adapter versions in the chat, each its own set-up beside the base alone (the Adapters view's "Chat with it"). */
  async compareInChat(baseModelId: string, versionIds: readonly string[]): Promise<void> {
    const [first, ...rest] = versionIds;
    if (!first) return;
    await this.adapters.refresh();
    await this.chat.load(baseModelId);
    if (this.chat.modelId !== baseModelId) return;
    this.chat.compareWithBase(first);
    for (const versionId of rest) this.chat.addSetup([{ versionId, scale: 1 }]);
    this.app.go('chat');
  }

  /** A finished run's adapter version in the Library's Adapters tab, where it exports (PEFT, merged, GGUF). */
  async showInLibrary(run: TrainingRun): Promise<void> {
    if (!run.adapterVersionId) return;
    await this.adapters.refresh();
    await this.adapters.selectAdapter(run.adapterId);
    await this.adapters.selectVersion(run.adapterVersionId);
    this.app.go('library', 'adapters');
  }

  /** Start the wizard's run, follow it live, and show the training view. */
  async startTraining(): Promise<void> {
    const name = this.wizard.adapterName.trim();
    const run = await this.wizard.start();
    if (!run) return;
    this.wizard.reset(this.settings.settings.defaults);
    this.training.track(run, name);
    this.app.go('runs');
  }
}
