import type { AdapterMix, Api, ChatMessage, SamplingSettings } from '../../../../preload/contract';
import { messageOf } from './errors';
import { comparisonTitle, type ComparisonContent } from '../comparison';

export const MAX_SETUPS = 3;

export const DEFAULT_SAMPLING: SamplingSettings = {
  maxNewTokens: 128, temperature: 0.7, topK: 40, topP: 0.95, repetitionPenalty: 1.1, seed: 1234,
};

/** One column of the comparison: the base alone (no adapters), one adapter, or a weighted mix. */
export interface Setup {
  readonly id: number;
  adapters: { versionId: string; scale: number }[];
}

export interface Reply {
  /** The set-up that produced it, as it was when the prompt was sent: editing a set-up later never relabels it. */
  readonly label: string;
  readonly mix: AdapterMix;
  text: string;
  done: boolean;
  stopped: boolean;
  error: string | null;
  tokens: number;
  tokensPerSecond: number;
}

export interface Turn {
  readonly prompt: string;
  /** Keyed by setup id. */
  readonly replies: Record<number, Reply>;
}

let requestCounter = 0;
function newRequestId(): string {
  requestCounter += 1;
  return `chat-${Date.now().toString(36)}-${requestCounter}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * The chat preview: one base model loaded, up to three set-ups answering the same prompt with the same seed,
 * one after another on the one engine, streamed token by token.
 */
export class ChatState {
  #api: Api;
  #labelOf: (adapters: AdapterMix['adapters']) => string;
  #modelId = $state<string | null>(null);
  #chatTemplate = $state<string | null>(null);
  #loading = $state(false);
  #setups = $state<Setup[]>([{ id: 1, adapters: [] }]);
  #nextSetupId = 2;
  #turns = $state<Turn[]>([]);
  #currentRequest = $state<string | null>(null);
  #streamingTo: Reply | null = null;
  #stopRequested = false;
  #error = $state<string | null>(null);
  sampling = $state<SamplingSettings>({ ...DEFAULT_SAMPLING });
  systemPrompt = $state('');
  /** The composer's text, kept here so that the app can fill in a prompt to try (the first run does). */
  draft = $state('');

  /** `labelOf` names a set-up's adapters as the library shows them ('Base model', 'pirate v2 ×1.00'). */
  constructor(api: Api, labelOf: (adapters: AdapterMix['adapters']) => string = (a) => (a.length === 0 ? 'Base model' : a.map((x) => x.versionId).join(' + '))) {
    this.#api = api;
    this.#labelOf = labelOf;
    api.on('chat.token', ({ requestId, text }) => {
      if (requestId === this.#currentRequest && this.#streamingTo) {
        this.#streamingTo.text += text;
        this.#streamingTo.tokens += 1;
      }
    });
  }

  get modelId(): string | null { return this.#modelId; }
  get chatTemplate(): string | null { return this.#chatTemplate; }
  get loading(): boolean { return this.#loading; }
  get setups(): readonly Setup[] { return this.#setups; }
  get turns(): readonly Turn[] { return this.#turns; }
  get error(): string | null { return this.#error; }
  get generating(): boolean { return this.#currentRequest !== null; }

  async load(modelId: string): Promise<void> {
    if (modelId === this.#modelId) return;
    this.#loading = true;
    this.#error = null;
    try {
      const loaded = await this.#api.invoke('chat.load', { modelId });
      this.#modelId = loaded.modelId;
      this.#chatTemplate = loaded.chatTemplate;
      // Adapters belong to a base model: set-ups and history start over with a new one.
      this.#setups = [{ id: this.#nextSetupId++, adapters: [] }];
      this.#turns = [];
    } catch (error) {
      this.#error = messageOf(error);
    } finally {
      this.#loading = false;
    }
  }

  addSetup(adapters: { versionId: string; scale: number }[] = []): void {
    if (this.#setups.length >= MAX_SETUPS) return;
    this.#setups.push({ id: this.#nextSetupId++, adapters });
  }

  /** Two set-ups side by side: the base alone, and the base with one adapter version; history starts over. */
  compareWithBase(versionId: string): void {
    if (this.generating) return;
    this.#setups = [{ id: this.#nextSetupId++, adapters: [] }, { id: this.#nextSetupId++, adapters: [{ versionId, scale: 1 }] }];
    this.#turns = [];
  }

  removeSetup(id: number): void {
    if (this.#setups.length > 1) this.#setups = this.#setups.filter((s) => s.id !== id);
  }

  /** Replace a set-up's adapters: [] for the base alone. */
  setAdapters(setupId: number, adapters: { versionId: string; scale: number }[]): void {
    const setup = this.#setups.find((s) => s.id === setupId);
    if (setup) setup.adapters = adapters;
  }

  addAdapter(setupId: number, versionId: string): void {
    const setup = this.#setups.find((s) => s.id === setupId);
    if (setup && !setup.adapters.some((a) => a.versionId === versionId)) setup.adapters.push({ versionId, scale: 1 });
  }

  removeAdapter(setupId: number, versionId: string): void {
    const setup = this.#setups.find((s) => s.id === setupId);
    if (setup) setup.adapters = setup.adapters.filter((a) => a.versionId !== versionId);
  }

  setScale(setupId: number, versionId: string, scale: number): void {
    const entry = this.#setups.find((s) => s.id === setupId)?.adapters.find((a) => a.versionId === versionId);
    if (entry && Number.isFinite(scale)) entry.scale = scale;
  }

  clear(): void {
    if (!this.generating) this.#turns = [];
  }

  /** The conversation one set-up has seen: its own earlier replies, then the new prompt. */
  messagesFor(setupId: number, upTo: number): ChatMessage[] {
    const messages: ChatMessage[] = this.systemPrompt.trim() ? [{ role: 'system', content: this.systemPrompt.trim() }] : [];
    this.#turns.slice(0, upTo + 1).forEach((turn, i) => {
      messages.push({ role: 'user', content: turn.prompt });
      const reply = turn.replies[setupId];
      if (i < upTo && reply) messages.push({ role: 'assistant', content: reply.text });
    });
    return messages;
  }

  async send(prompt: string): Promise<void> {
    const text = prompt.trim();
    if (!text || this.generating) return;
    if (!this.#modelId) {
      this.#error = 'Load a base model first.';
      return;
    }
    this.#error = null;
    this.#stopRequested = false;
    const replies: Record<number, Reply> = {};
    for (const s of this.#setups) {
      const mix: AdapterMix = { adapters: s.adapters.map((a) => ({ versionId: a.versionId, scale: a.scale })) };
      replies[s.id] = { label: this.#labelOf(mix.adapters), mix, text: '', done: false, stopped: false, error: null, tokens: 0, tokensPerSecond: 0 };
    }
    this.#turns.push({ prompt: text, replies });
    const turnIndex = this.#turns.length - 1;
    const sampling = $state.snapshot(this.sampling);
    for (const setup of [...this.#setups]) {
      const reply = this.#turns[turnIndex]!.replies[setup.id]!;
      if (this.#stopRequested) {
        reply.stopped = true;
        reply.done = true;
        continue;
      }
      await this.#generate(setup, turnIndex, reply, sampling);
    }
  }

  async #generate(setup: Setup, turnIndex: number, reply: Reply, sampling: SamplingSettings): Promise<void> {
    const requestId = newRequestId();
    const mix = reply.mix;
    this.#currentRequest = requestId;
    this.#streamingTo = reply;
    try {
      const result = await this.#api.invoke('chat.generate', {
        requestId, mix, messages: this.messagesFor(setup.id, turnIndex), sampling,
      });
      reply.text = result.text;
      reply.tokens = result.tokens;
      reply.tokensPerSecond = result.tokensPerSecond;
      reply.stopped = this.#stopRequested;
    } catch (error) {
      if (this.#stopRequested) reply.stopped = true;
      else reply.error = messageOf(error);
    } finally {
      reply.done = true;
      this.#currentRequest = null;
      this.#streamingTo = null;
    }
  }

  async stop(): Promise<void> {
    this.#stopRequested = true;
    const requestId = this.#currentRequest;
    if (!requestId) return;
    try {
      await this.#api.invoke('chat.stop', { requestId });
    } catch (error) {
      this.#error = messageOf(error);
    }
  }

  /**
   * The conversation as a comparison to save: the system prompt and the prompts, and every finished answer with the
   * label of the set-up that produced it (an answer that failed is saved as its error).
   */
  comparison(): ComparisonContent {
    const system = this.systemPrompt.trim();
    const messages: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
    const outputs: ComparisonContent['outputs'][number][] = [];
    this.#turns.forEach((turn, i) => {
      messages.push({ role: 'user', content: turn.prompt });
      for (const reply of Object.values(turn.replies)) {
        outputs.push({
          turn: i, label: reply.label, mix: $state.snapshot(reply.mix) as AdapterMix,
          text: reply.error ? `(error: ${reply.error})` : reply.text, tokens: reply.tokens,
          tokensPerSecond: reply.tokensPerSecond > 0 ? reply.tokensPerSecond : null,
        });
      }
    });
    const content = { messages, outputs };
    return { title: comparisonTitle(content), baseModelId: this.#modelId, sampling: $state.snapshot(this.sampling), ...content };
  }
}
