/**
 * A model folder's tokenizer: tokenizer.json (byte-level BPE as GPT-2/Qwen/Llama-3, SentencePiece-style BPE with
 * byte fallback as Llama-2) through @huggingface/tokenizers, special tokens and the chat template from
 * tokenizer_config.json, the template rendered with @huggingface/jinja as transformers' apply_chat_template does.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { ModelIoError } from './errors';
import { GgufFile, isGgufFile } from './gguf';
import { tokenizerFromGguf } from './gguf-tokenizer';

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface ChatTemplateOptions {
  /** Append the header that starts the assistant's turn (what generation continues from). */
  readonly addGenerationPrompt?: boolean;
}

export interface EncodeOptions {
  /** Add the tokens the tokenizer's post-processor adds (Llama's BOS). Default true, as in transformers. */
  readonly addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  readonly skipSpecialTokens?: boolean;
}

type TokenSpec = string | { content?: unknown } | null | undefined;

function readJson(path: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (error) {
    throw new ModelIoError('INVALID_TOKENIZER', `${path}: cannot read (${(error as Error).message})`);
  }
}

function tokenText(spec: TokenSpec): string | null {
  if (typeof spec === 'string') return spec;
  if (spec && typeof spec === 'object' && typeof spec.content === 'string') return spec.content;
  return null;
}

/** tokenizer_config.json's chat_template: one string, or a list of named templates ('default' wins). */
function chatTemplateOf(config: Record<string, unknown>, dir: string): string | null {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const chosen = named.find((x) => x.name === 'default') ?? named[0];
    if (typeof chosen?.template === 'string') return chosen.template;
  }
  // Newer transformers save it beside the config.
  const jinjaFile = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaFile)) return readFileSync(jinjaFile, 'utf8');
  return null;
}

export class ModelTokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosTokenId: number | null;
  /**
   * Whether sequences start with BOS: tokenizer_config.json's add_bos_token where it says (transformers' Llama and
   * Gemma tokenizers rebuild their post-processor from it), else whether tokenizer.json's post-processor adds it.
   */
  readonly addBosToken: boolean;
  /** The tokenizer's EOS first; callers add the model's generation_config stops. */
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
  readonly chatTemplate: string | null;
  /** Size of the tokenizer's vocabulary including added tokens (may exceed a model's embedding rows). */
  readonly vocabSize: number;
  private compiledTemplate: Template | null = null;

  constructor(
    private readonly inner: HfTokenizer,
    private readonly config: Record<string, unknown>,
    dir: string,
  ) {
    const id = (spec: TokenSpec) => {
      const text = tokenText(spec);
      return text === null ? null : (inner.token_to_id(text) ?? null);
    };
    this.bosToken = tokenText(config.bos_token as TokenSpec);
    this.eosToken = tokenText(config.eos_token as TokenSpec);
    this.bosTokenId = id(config.bos_token as TokenSpec);
    const eos = id(config.eos_token as TokenSpec);
    this.eosTokenIds = eos === null ? [] : [eos];
    this.padTokenId = id(config.pad_token as TokenSpec);
    const bos = this.bosTokenId;
    this.addBosToken = typeof config.add_bos_token === 'boolean'
      ? config.add_bos_token && bos !== null
      : bos !== null && inner.encode('a', { add_special_tokens: true }).ids[0] === bos && inner.encode('a', { add_special_tokens: false }).ids[0] !== bos;
    this.chatTemplate = chatTemplateOf(config, dir);
    this.vocabSize = inner.get_vocab(true).size;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return this.inner.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | null {
    return this.inner.token_to_id(token) ?? null;
  }

  /** Renders messages with the model's chat template, as transformers' apply_chat_template(tokenize=False). */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null) {
      throw new ModelIoError('INVALID_TOKENIZER', 'this model has no chat_template in tokenizer_config.json; use a plain prompt instead of chat');
    }
    this.compiledTemplate ??= new Template(this.chatTemplate);
    const specials: Record<string, string> = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const text = tokenText(this.config[key] as TokenSpec);
      if (text !== null) specials[key] = text;
    }
    try {
      return this.compiledTemplate.render({
        ...specials,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: options.addGenerationPrompt ?? false,
      });
    } catch (error) {
      throw new ModelIoError('INVALID_TOKENIZER', `chat template failed: ${(error as Error).message}`);
    }
  }
}

/** The tokenizer of a model folder, or of a GGUF model file (rebuilt from its tokenizer.ggml.* metadata). */
export async function loadTokenizer(dir: string): Promise<ModelTokenizer> {
  if (isGgufFile(dir)) return loadGgufTokenizer(dir);
  const jsonPath = join(dir, 'tokenizer.json');
  if (!existsSync(jsonPath)) {
    throw new ModelIoError('INVALID_TOKENIZER', `${dir}: no tokenizer.json (only fast-tokenizer files load; vocab.json/merges.txt alone are not enough)`);
  }
  const tokenizerJson = readJson(jsonPath);
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJson(configPath) : {};
  let inner: HfTokenizer;
  try {
    inner = new HfTokenizer(tokenizerJson, config);
  } catch (error) {
    throw new ModelIoError('INVALID_TOKENIZER', `${jsonPath}: not a tokenizer this library reads (${(error as Error).message})`);
  }
  const tokenizer = new ModelTokenizer(inner, config, dir);
  if (tokenizer.vocabSize === 0) {
    throw new ModelIoError('INVALID_TOKENIZER', `${jsonPath}: the vocabulary is empty; the tokenizer cannot encode anything (a damaged or placeholder tokenizer.json)`);
  }
  return tokenizer;
}

async function loadGgufTokenizer(path: string): Promise<ModelTokenizer> {
  const file = new GgufFile(path);
  try {
    const { tokenizerJson, tokenizerConfig } = tokenizerFromGguf(file);
    let inner: HfTokenizer;
    try {
      inner = new HfTokenizer(tokenizerJson, tokenizerConfig);
    } catch (error) {
      throw new ModelIoError('INVALID_TOKENIZER', `${path}: the tokenizer in its metadata could not be built (${(error as Error).message})`);
    }
    return new ModelTokenizer(inner, tokenizerConfig, path);
  } finally {
    file.close();
  }
}
