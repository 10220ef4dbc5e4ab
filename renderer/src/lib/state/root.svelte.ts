/**
 * The app's state, wired to one `api`. The shell builds it once with the real transport; tests build it with a fake.
 */
import type { Api } from '../../../../preload/contract';
import { AdaptersState } from './adapters.svelte';
import { AppState } from './app.svelte';
import { ChatState } from './chat.svelte';
import { DatasetsState } from './datasets.svelte';
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
  readonly training: TrainingState;
  readonly wizard: WizardState;
  readonly chat: ChatState;

  constructor(api: Api) {
    this.app = new AppState(api);
    this.settings = new SettingsState(api);
    this.models = new ModelsState(api);
    this.datasets = new DatasetsState(api);
    this.adapters = new AdaptersState(api);
    this.training = new TrainingState(api);
    this.wizard = new WizardState(api, this.models);
    this.chat = new ChatState(api);
    // A finished run becomes an adapter version: the library shows it without a manual refresh.
    this.training.onFinished((run) => {
      void this.adapters.refresh();
      const label = run.status === 'done' ? 'finished' : run.status;
      this.app.notify(run.status === 'failed' ? 'error' : 'info', `Training run ${label}${run.error ? `: ${run.error}` : ''}.`);
    });
  }

  async load(): Promise<void> {
    await Promise.all([
      this.app.load(), this.settings.load(), this.models.refresh(), this.datasets.refresh(),
      this.adapters.refresh(), this.training.refresh(),
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
