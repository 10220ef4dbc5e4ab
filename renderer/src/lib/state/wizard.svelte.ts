import type {
  Adapter, AdapterVersion, Api, BasePrecision, CommandResult, LinearModuleInfo, PrecisionCost, PrecisionProgress, TrainingEstimate,
  TrainingProposal, TrainingRun, TrainingSettings,
} from '../../../../preload/contract';
import { precisionApplies } from '../precision';
import { activePreset, moduleKinds, presetSelection, selectionOf, targetModulesOf, trainableParameters, type ModulePreset } from '../lora';
import { formFromSettings, settingsFromForm, validateForm, type HyperField, type HyperForm } from '../settings-form';
import { setOf, withItems } from '../immutable';
import { messageOf } from './errors';
import type { ModelsState } from './models.svelte';

export const WIZARD_STEPS = [
  { id: 'model', label: 'Base model' },
  { id: 'dataset', label: 'Dataset' },
  { id: 'modules', label: 'Target modules' },
  { id: 'lora', label: 'LoRA' },
  { id: 'training', label: 'Training' },
  { id: 'review', label: 'Review' },
] as const;

export type WizardStep = (typeof WIZARD_STEPS)[number]['id'];

const LORA_FIELDS: readonly HyperField[] = ['rank', 'alpha', 'dropout'];

/** The fine-tuning wizard: choices, live parameter count, validation per step, estimate, start. */
export class WizardState {
  #api: Api;
  #models: ModelsState;
  #step = $state(0);
  #modelId = $state<string | null>(null);
  #datasetId = $state<string | null>(null);
  #adapterName = $state('');
  #parentVersionId = $state<string | null>(null);
  #selected = $state.raw<ReadonlySet<string>>(setOf());
  #pendingTargets: readonly string[] | null = null;
  /** The proposal's targets, filled in before the model's modules were known (the engine still starting). */
  #pendingPreset: ModulePreset | null = null;
  /** The model whose modules the selection was made from: a second answer for the same model keeps the selection. */
  #selectionFor: string | null = null;
  #form = $state<HyperForm>(formFromSettings({}));
  #attempted = $state.raw<ReadonlySet<number>>(setOf());
  #estimate = $state.raw<TrainingEstimate | null>(null);
  #estimating = $state(false);
  #starting = $state(false);
  #exporting = $state(false);
  #exported = $state<string | null>(null);
  #error = $state<string | null>(null);
  #proposal = $state.raw<TrainingProposal | null>(null);
  /** The model and dataset the proposal was last filled in for: a new pair gets the proposal once. */
  #proposedFor: string | null = null;
  /** Set up from a saved version: its recipe is kept, the proposal only shown. */
  #prefilled = false;
  #preview = $state.raw<CommandResult<'datasets.preview'> | null>(null);
  #previewError = $state<string | null>(null);
  #precisionCost = $state.raw<PrecisionCost | null>(null);
  #precisionProgress = $state.raw<PrecisionProgress | null>(null);
  #measuring = $state(false);
  #measureError = $state<string | null>(null);
  /** What the cost was measured on (model, dataset and the settings that pick the rows): measured once for each. */
  #measuredFor: string | null = null;
  #measureCount = 0;
  /** The measuring request in flight, stopped when a run starts (the run would wait behind it in the engine). */
  #measureRequest: string | null = null;
  #measureStopped = false;

  constructor(api: Api, models: ModelsState) {
    this.#api = api;
    this.#models = models;
  }

  get step(): number { return this.#step; }
  get stepId(): WizardStep { return WIZARD_STEPS[this.#step]!.id; }
  get modelId(): string | null { return this.#modelId; }
  get datasetId(): string | null { return this.#datasetId; }
  get adapterName(): string { return this.#adapterName; }
  set adapterName(name: string) { this.#adapterName = name; }
  get parentVersionId(): string | null { return this.#parentVersionId; }
  get selected(): ReadonlySet<string> { return this.#selected; }
  /** Bound to the form's inputs; validation follows every keystroke. */
  get form(): HyperForm { return this.#form; }
  get estimate(): TrainingEstimate | null { return this.#estimate; }
  get estimating(): boolean { return this.#estimating; }
  get starting(): boolean { return this.#starting; }
  get exporting(): boolean { return this.#exporting; }
  /** What the last "Export for PEFT + accelerate" wrote, in words. */
  get exported(): string | null { return this.#exported; }
  get error(): string | null { return this.#error; }
  /** The proposed learning rate, steps and rank for this model and dataset, and the effect of the form's settings. */
  get proposal(): TrainingProposal | null { return this.#proposal; }
  /** The chosen dataset's first records as the chosen model sees them, with the lines skipped at import. */
  get preview(): CommandResult<'datasets.preview'> | null { return this.#preview; }
  get previewError(): string | null { return this.#previewError; }
  /** The base precision's measured cost on this dataset (validation-loss difference against 16 bits), once measured. */
  get precisionCost(): PrecisionCost | null { return this.#precisionCost; }
  get precisionProgress(): PrecisionProgress | null { return this.#precisionProgress; }
  get measuring(): boolean { return this.#measuring; }
  get measureError(): string | null { return this.#measureError; }
  /** Continuing a version trains its own adapter further: its rank and target modules cannot change. */
  get locked(): boolean { return this.#parentVersionId !== null; }

  // $derived.by: the closures read #models lazily, after the constructor has set it.
  readonly modules = $derived.by<readonly LinearModuleInfo[]>(() =>
    this.#modelId ? (this.#models.modulesOf(this.#modelId) ?? []) : [],
  );
  readonly fieldErrors = $derived(validateForm(this.#form));
  readonly rankValue = $derived(Number(this.#form.rank));
  readonly trainableParams = $derived(trainableParameters(this.modules, this.#selected, this.rankValue));
  readonly totalParams = $derived.by(() => this.#models.byId(this.#modelId)?.parameterCount ?? 0);
  readonly targetModules = $derived(targetModulesOf(this.modules, this.#selected));
  /** Module path -> its kind's label, the grid's column. */
  readonly moduleKinds = $derived(moduleKinds(this.modules));
  /** The preset the selection equals, or null for a hand-picked one. */
  readonly activePreset = $derived(activePreset(this.modules, this.#selected));

  /** Messages that keep each step from being complete. */
  readonly stepErrors = $derived<readonly (readonly string[])[]>([
    this.#modelId ? [] : ['Choose a base model.'],
    this.#datasetId ? [] : ['Choose a dataset.'],
    this.#selected.size > 0 ? [] : ['Choose at least one module to adapt.'],
    LORA_FIELDS.flatMap((f) => this.fieldErrors[f] ?? []),
    [
      ...(Object.entries(this.fieldErrors) as [HyperField, string][])
        .filter(([f]) => !LORA_FIELDS.includes(f)).map(([, m]) => m),
      ...(this.#adapterName.trim() === '' ? ['adapter name is required'] : []),
    ],
    [],
  ]);

  readonly canStart = $derived(this.stepErrors.every((e) => e.length === 0));

  /** Errors show for a step once the user tried to leave it, so a fresh form is not all red. */
  showErrorsFor(step: number): boolean {
    return this.#attempted.has(step);
  }

  fieldError(field: HyperField): string | undefined {
    const step = LORA_FIELDS.includes(field) ? 3 : 4;
    const message = this.fieldErrors[field];
    return message && (this.showErrorsFor(step) || String(this.#form[field]).trim() !== '') ? message : undefined;
  }

  reset(defaults: Partial<TrainingSettings> = {}): void {
    this.#step = 0;
    this.#datasetId = null;
    this.#adapterName = '';
    this.#parentVersionId = null;
    this.#form = formFromSettings(defaults);
    this.#attempted = setOf();
    this.#estimate = null;
    this.#error = null;
    this.#pendingTargets = null;
    this.#pendingPreset = null;
    this.#selected = setOf();
    this.#selectionFor = null;
    this.#modelId = null;
    this.#proposal = null;
    this.#proposedFor = null;
    this.#prefilled = false;
    this.#preview = null;
    this.#previewError = null;
    this.#precisionCost = null;
    this.#precisionProgress = null;
    this.#measureError = null;
    this.#measuredFor = null;
  }

  /** The only base model in the library needs no choosing: the wizard opens with it chosen. */
  preselectOnlyModel(): void {
    const only = this.#models.models.length === 1 ? this.#models.models[0] : undefined;
    if (only && this.#modelId === null) void this.chooseModel(only.id);
  }

  async chooseModel(modelId: string): Promise<void> {
    this.#modelId = modelId;
    const modules = await this.#models.loadModules(modelId);
    if (this.#modelId !== modelId) return;
    // Chosen twice (preselected, then clicked), the answers may come in either order: only the first one for this
    // model puts a preset in; the second keeps what the first, or a proposal in between, selected.
    if (this.#pendingTargets) {
      this.#selected = selectionOf(modules, this.#pendingTargets);
      this.#pendingTargets = null;
    } else if (this.#selectionFor !== modelId || this.#selected.size === 0) {
      this.#selected = presetSelection(modules, this.#pendingPreset ?? 'qv');
    }
    if (modules.length > 0) this.#selectionFor = modelId;
    this.#pendingPreset = null;
    this.#estimate = null;
    await Promise.all([this.propose(), this.loadPreview()]);
  }

  async chooseDataset(datasetId: string): Promise<void> {
    this.#datasetId = datasetId;
    this.#estimate = null;
    await Promise.all([this.propose(), this.loadPreview()]);
  }

  /** The first records of the chosen dataset as the chosen model sees them. */
  async loadPreview(): Promise<void> {
    const [id, modelId] = [this.#datasetId, this.#modelId];
    if (!id || !modelId) return;
    this.#previewError = null;
    try {
      const preview = await this.#api.invoke('datasets.preview', { id, modelId, limit: 3 });
      if (this.#datasetId === id && this.#modelId === modelId) this.#preview = preview;
    } catch (error) {
      this.#preview = null;
      this.#previewError = messageOf(error);
    }
  }

  /**
   * Asks for the proposal and the effect of the form's settings. A new model and dataset pair fills the proposal in
   * once (not when continuing or duplicating a version, whose recipe stays), and only into fields left untouched
   * while the answer was on its way.
   */
  async propose(): Promise<void> {
    const [modelId, datasetId] = [this.#modelId, this.#datasetId];
    if (!modelId || !datasetId) return;
    const pair = `${modelId}:${datasetId}`;
    const fill = this.#proposedFor !== pair && this.#parentVersionId === null && !this.#prefilled;
    if (fill) this.#proposedFor = pair; // filled in once, even if this answer fails or comes late
    const asked = { ...this.#form };
    // Before the model's modules arrive the selection is not the user's: their arrival puts the default preset in.
    const selected = this.modules.length > 0 ? this.#selected : null;
    const valid = Object.keys(this.fieldErrors).length === 0 && this.#selected.size > 0;
    try {
      const proposal = await this.#api.invoke('train.propose', { modelId, datasetId, ...(valid && !fill ? { settings: this.#settings() } : {}) });
      if (this.#modelId !== modelId || this.#datasetId !== datasetId) return;
      this.#proposal = proposal;
      if (!fill) return;
      const untouched = (['learningRate', 'maxSteps', 'epochs', 'rank', 'alpha'] as const).every((f) => this.#form[f] === asked[f]) && (selected === null || this.#selected === selected);
      if (untouched) this.applyProposal();
    } catch {
      this.#proposal = null; // the proposal is advice: the wizard works without it
    }
  }

  /** Puts the proposal's learning rate, steps, targets, rank and alpha in the form (targets, rank and alpha stay when continuing). */
  applyProposal(): void {
    const p = this.#proposal;
    if (!p) return;
    this.#form.learningRate = String(p.learningRate);
    this.#form.maxSteps = String(p.maxSteps);
    this.#form.epochs = '';
    if (!this.locked) {
      this.#form.rank = String(p.rank);
      this.#form.alpha = String(p.alpha);
      this.#selected = presetSelection(this.modules, p.targets);
      this.#pendingPreset = this.modules.length === 0 ? p.targets : null;
      if (this.modules.length > 0) this.#selectionFor = this.#modelId;
    }
    void this.propose();
  }

  applyPreset(preset: ModulePreset): void {
    if (!this.locked) this.#selected = presetSelection(this.modules, preset);
  }

  toggleModule(path: string, on?: boolean): void {
    if (!this.locked) this.#selected = withItems(this.#selected, [path], on ?? !this.#selected.has(path));
  }

  /** Select or clear one module kind across every layer (a grid column: 'q_proj', GPT-2's 'attn.c_proj'). */
  setColumn(kind: string, on: boolean): void {
    if (this.locked) return;
    this.#selected = withItems(this.#selected, this.modules.filter((m) => this.moduleKinds.get(m.path) === kind).map((m) => m.path), on);
  }

  /** Select or clear every module of one layer (a grid row). */
  setLayer(layer: number, on: boolean): void {
    if (this.locked) return;
    this.#selected = withItems(this.#selected, this.modules.filter((m) => m.layer === layer).map((m) => m.path), on);
  }

  goTo(step: number): void {
    // Forward jumps only past complete steps; backward always.
    for (let s = 0; s < Math.min(step, WIZARD_STEPS.length); s++) {
      if ((this.stepErrors[s] ?? []).length > 0) {
        this.#attempted = withItems(this.#attempted, [s], true);
        this.#step = s;
        return;
      }
    }
    this.#step = Math.max(0, Math.min(step, WIZARD_STEPS.length - 1));
    if (this.stepId === 'review') void this.refreshEstimate();
    if (this.stepId === 'training' || this.stepId === 'review') void this.propose();
  }

  next(): void {
    this.#attempted = withItems(this.#attempted, [this.#step], true);
    this.goTo(this.#step + 1);
  }

  back(): void {
    this.goTo(this.#step - 1);
  }

  #settings(): TrainingSettings {
    return settingsFromForm(this.#form, this.targetModules);
  }

  async refreshEstimate(): Promise<void> {
    if (!this.canStart || !this.#modelId || !this.#datasetId) return;
    this.#estimating = true;
    this.#error = null;
    try {
      this.#estimate = await this.#api.invoke('train.estimate', {
        modelId: this.#modelId, datasetId: this.#datasetId, settings: this.#settings(),
      });
    } catch (error) {
      this.#error = messageOf(error);
    } finally {
      this.#estimating = false;
    }
    // Where the store holds the base, its precision is a choice: measure what each costs on this data, once.
    if (precisionApplies(this.#estimate) && this.#measuredFor !== this.#measureKey()) void this.measurePrecision();
  }

  #measureKey(): string {
    const f = this.#form;
    return [this.#modelId, this.#datasetId, f.maxSeqLen, f.batchSize, f.valSplit, f.seed, f.trainOnPrompt].join(':');
  }

  /**
   * Measures the base precision's cost on this dataset in the engine host (a few validation batches at 16 bits and at
   * Q8_0), following its progress; a failure is said beside the choice and keeps the wizard usable.
   */
  async measurePrecision(): Promise<void> {
    if (!this.canStart || !this.#modelId || !this.#datasetId || this.#measuring) return;
    const key = this.#measureKey();
    const requestId = `precision-${Date.now().toString(36)}-${++this.#measureCount}`; // events go to every window: this one's own
    this.#measuredFor = key;
    this.#measureRequest = requestId;
    this.#measureStopped = false;
    this.#measuring = true;
    this.#measureError = null;
    this.#precisionCost = null;
    this.#precisionProgress = null;
    const off = this.#api.on('train.precisionProgress', (p) => {
      if (p.requestId === requestId) this.#precisionProgress = p;
    });
    try {
      const cost = await this.#api.invoke('train.measurePrecision', {
        requestId, modelId: this.#modelId, datasetId: this.#datasetId, settings: this.#settings(),
      });
      if (this.#measureKey() === key) this.#precisionCost = cost;
    } catch (error) {
      if (!this.#measureStopped) this.#measureError = `Measuring the base precision failed: ${messageOf(error)}`;
      else this.#measuredFor = null; // stopped for a run: measured again when the review step asks next
    } finally {
      off();
      this.#measureRequest = null;
      this.#measuring = false;
      this.#precisionProgress = null;
    }
  }

  /** Stops a measuring in flight (the run would wait behind it); the choice already made stands. */
  async #stopMeasuring(): Promise<void> {
    const requestId = this.#measureRequest;
    if (requestId === null) return;
    this.#measureStopped = true;
    try {
      await this.#api.invoke('train.stopMeasure', { requestId });
    } catch {
      // Nothing to stop any more, or the engine is gone: the start says what matters.
    }
  }

  /** Keeps the base at `precision` for this run; the estimate follows (its memory is that precision's). */
  choosePrecision(precision: BasePrecision): void {
    if (this.#form.basePrecision === precision) return;
    this.#form.basePrecision = precision;
    void this.refreshEstimate();
  }

  async start(): Promise<TrainingRun | null> {
    if (!this.canStart || !this.#modelId || !this.#datasetId) {
      this.#attempted = setOf(WIZARD_STEPS.map((_, i) => i));
      this.#error = this.stepErrors.flat()[0] ?? null;
      return null;
    }
    this.#starting = true;
    this.#error = null;
    try {
      await this.#stopMeasuring();
      return await this.#api.invoke('train.start', {
        modelId: this.#modelId, datasetId: this.#datasetId, settings: this.#settings(),
        adapterName: this.#adapterName.trim(),
        ...(this.#parentVersionId ? { parentVersionId: this.#parentVersionId } : {}),
      });
    } catch (error) {
      this.#error = messageOf(error);
      return null;
    } finally {
      this.#starting = false;
    }
  }

  /** Writes this run as a folder for transformers + PEFT + accelerate into `destination` (new or empty). */
  async exportForPeft(destination: string): Promise<string | null> {
    if (!this.canStart || !this.#modelId || !this.#datasetId) {
      this.#attempted = setOf(WIZARD_STEPS.map((_, i) => i));
      this.#error = this.stepErrors.flat()[0] ?? null;
      return null;
    }
    if (destination.trim() === '') {
      this.#error = 'Enter a new or empty folder to export the run into.';
      return null;
    }
    this.#exporting = true;
    this.#error = null;
    this.#exported = null;
    try {
      const done = await this.#api.invoke('runs.exportForPeft', {
        modelId: this.#modelId, datasetId: this.#datasetId, settings: this.#settings(), destination: destination.trim(),
        ...(this.#parentVersionId ? { parentVersionId: this.#parentVersionId } : {}),
      });
      this.#exported = `Exported to ${done.path}: ${done.trainRows} training rows, ${done.valRows} validation rows, ${done.totalSteps} steps. Its README.md has the launch commands.`;
      return done.path;
    } catch (error) {
      this.#error = messageOf(error);
      return null;
    } finally {
      this.#exporting = false;
    }
  }

  /**
   * Prefill from a saved version. 'continue' trains a child version of the same adapter from its weights;
   * 'duplicate' starts a new adapter with the same recipe.
   */
  async prefill(adapter: Adapter, version: AdapterVersion, mode: 'continue' | 'duplicate'): Promise<void> {
    this.reset(version.settings ?? {});
    this.#prefilled = true;
    this.#adapterName = mode === 'continue' ? adapter.name : `${adapter.name} copy`;
    this.#parentVersionId = mode === 'continue' ? version.id : null;
    this.#pendingTargets = version.settings?.lora.targetModules ?? null;
    if (version.datasetId) this.#datasetId = version.datasetId;
    await this.chooseModel(adapter.baseModelId);
    this.#step = this.#datasetId ? 2 : 1;
  }
}
