/**
 * An Ollama Modelfile for an exported GGUF: FROM, ADAPTER, TEMPLATE and PARAMETER stop, and the commands that run
 * it in Ollama and llama.cpp.
 *
 * Ollama formats chats with a Go template, the model with a Jinja one. We translate the common chat families
 * (ChatML, Llama 3, Llama 2 [INST], Gemma, Phi-3) and keep a translation only when it renders exactly what the
 * model's own Jinja template renders for a set of sample conversations (the check is a mirror of the Go template
 * in TypeScript). Otherwise TEMPLATE is left out and the Modelfile says why: a wrong template would silently
 * format prompts unlike the training data.
 */
import { Template } from '@huggingface/jinja';

interface Message {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

interface Family {
  readonly name: string;
  /** A marker of the family in the Jinja source. */
  readonly marker: string;
  /** Renders like the Go template below (Ollama passes system messages in .Messages and their text in .System). */
  render(messages: readonly Message[], defaultSystem: string | null): string;
  goTemplate(defaultSystem: string | null): string;
  readonly stops: readonly string[];
  /** The role name the family gives the system prompt when it has a default one (null: none possible). */
  readonly systemOpen: string | null;
  readonly systemClose: string;
}

const hasSystem = (messages: readonly Message[]) => messages.some((m) => m.role === 'system');

const FAMILIES: readonly Family[] = [
  {
    name: 'ChatML',
    marker: '<|im_start|>',
    render: (messages, def) =>
      (def !== null && !hasSystem(messages) ? `<|im_start|>system\n${def}<|im_end|>\n` : '') +
      messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n',
    goTemplate: (def) =>
      (def !== null ? `{{ if not .System }}<|im_start|>system\n${def}<|im_end|>\n{{ end }}` : '') +
      '{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n',
    stops: ['<|im_start|>', '<|im_end|>'],
    systemOpen: '<|im_start|>system\n',
    systemClose: '<|im_end|>\n',
  },
  {
    name: 'Llama 3',
    marker: '<|start_header_id|>',
    render: (messages, def) =>
      (def !== null && !hasSystem(messages) ? `<|start_header_id|>system<|end_header_id|>\n\n${def}<|eot_id|>` : '') +
      messages.map((m) => `<|start_header_id|>${m.role}<|end_header_id|>\n\n${m.content}<|eot_id|>`).join('') +
      '<|start_header_id|>assistant<|end_header_id|>\n\n',
    goTemplate: (def) =>
      (def !== null ? `{{ if not .System }}<|start_header_id|>system<|end_header_id|>\n\n${def}<|eot_id|>{{ end }}` : '') +
      '{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n',
    stops: ['<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
    systemOpen: '<|start_header_id|>system<|end_header_id|>\n\n',
    systemClose: '<|eot_id|>',
  },
  {
    name: 'Gemma',
    marker: '<start_of_turn>',
    // Gemma has no system role: its template puts the system text before the first user message.
    render: (messages) => {
      const system = messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n\n');
      let first = true;
      return messages.filter((m) => m.role !== 'system').map((m) => {
        const text = first && system ? `${system}\n\n${m.content}` : m.content;
        first = false;
        return `<start_of_turn>${m.role === 'assistant' ? 'model' : 'user'}\n${text}<end_of_turn>\n`;
      }).join('') + '<start_of_turn>model\n';
    },
    goTemplate: () =>
      '{{ $first := true }}{{ range .Messages }}{{ if ne .Role "system" }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}user{{ end }}\n' +
      '{{ if and $first $.System }}{{ $.System }}\n\n{{ end }}{{ .Content }}<end_of_turn>\n{{ $first = false }}{{ end }}{{ end }}<start_of_turn>model\n',
    stops: ['<start_of_turn>', '<end_of_turn>'],
    systemOpen: null,
    systemClose: '',
  },
  {
    name: 'Phi-3',
    marker: '<|end|>',
    render: (messages) => messages.map((m) => `<|${m.role}|>\n${m.content}<|end|>\n`).join('') + '<|assistant|>\n',
    goTemplate: () => '{{ range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n',
    stops: ['<|end|>', '<|user|>', '<|assistant|>', '<|system|>'],
    systemOpen: null,
    systemClose: '',
  },
  {
    name: 'Llama 2',
    marker: '[INST]',
    // The first user turn carries the system prompt; BOS ('<s>') opens every later user turn (the runtime adds the first).
    render: (messages) => {
      const system = messages.find((m) => m.role === 'system')?.content ?? null;
      let turn = 0;
      return messages.filter((m) => m.role !== 'system').map((m) => {
        if (m.role === 'assistant') return ` ${m.content} </s>`;
        const text = turn === 0 && system !== null ? `<<SYS>>\n${system}\n<</SYS>>\n\n${m.content}` : m.content;
        return `${turn++ === 0 ? '' : '<s>'}[INST] ${text} [/INST]`;
      }).join('');
    },
    goTemplate: () =>
      '{{ $first := true }}{{ range .Messages }}{{ if eq .Role "user" }}{{ if not $first }}<s>{{ end }}[INST] ' +
      '{{ if and $first $.System }}<<SYS>>\n{{ $.System }}\n<</SYS>>\n\n{{ end }}{{ .Content }} [/INST]{{ $first = false }}' +
      '{{ else if eq .Role "assistant" }} {{ .Content }} </s>{{ end }}{{ end }}',
    stops: ['[INST]', '[/INST]', '<<SYS>>', '<</SYS>>'],
    systemOpen: null,
    systemClose: '',
  },
];

/** Conversations both renderings must agree on (contents without surrounding spaces: Jinja's trim is a no-op). */
const SAMPLES: readonly (readonly Message[])[] = [
  [{ role: 'user', content: 'Hello there' }],
  [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name a colour.' }],
  [{ role: 'user', content: 'One' }, { role: 'assistant', content: 'Two' }, { role: 'user', content: 'Three?' }],
  [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'Bye' }],
];

export interface OllamaTemplate {
  /** The Go template, or null when none reproduces the model's chat template. */
  readonly template: string | null;
  readonly family: string | null;
  readonly stops: readonly string[];
  /** Why TEMPLATE is missing, for the Modelfile's comment and the user. */
  readonly note: string | null;
}

export interface TemplateTokens {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
}

function renderJinja(template: Template, messages: readonly Message[], tokens: TemplateTokens): string | null {
  try {
    const text = template.render({
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: true,
      bos_token: tokens.bosToken ?? '',
      eos_token: tokens.eosToken ?? '',
    });
    // llama.cpp and Ollama add BOS themselves where the model asks for it (tokenizer.ggml.add_bos_token).
    return tokens.bosToken && text.startsWith(tokens.bosToken) ? text.slice(tokens.bosToken.length) : text;
  } catch {
    return null;
  }
}

/** The default system prompt the Jinja template adds when the chat has none, as the family would write it. */
function defaultSystem(family: Family, template: Template, tokens: TemplateTokens): string | null {
  if (family.systemOpen === null) return null;
  const rendered = renderJinja(template, [{ role: 'user', content: 'Hello there' }], tokens);
  if (!rendered?.startsWith(family.systemOpen)) return null;
  const end = rendered.indexOf(family.systemClose, family.systemOpen.length);
  return end < 0 ? null : rendered.slice(family.systemOpen.length, end);
}

/** The Go template that renders as `chatTemplate` does, for the families above. */
export function ollamaTemplate(chatTemplate: string | null, tokens: TemplateTokens): OllamaTemplate {
  if (chatTemplate === null) return { template: null, family: null, stops: [], note: 'the model has no chat template; Ollama will send prompts as they are' };
  let compiled: Template;
  try {
    compiled = new Template(chatTemplate);
  } catch (error) {
    return { template: null, family: null, stops: [], note: `the chat template does not parse (${(error as Error).message})` };
  }
  const family = FAMILIES.find((f) => chatTemplate.includes(f.marker));
  if (!family) return { template: null, family: null, stops: [], note: 'the chat template is not one of the families translated to Ollama (ChatML, Llama 3, Llama 2, Gemma, Phi-3); add a TEMPLATE by hand' };
  const def = defaultSystem(family, compiled, tokens);
  // A conversation the model's template refuses (Gemma's raises on a system message) defines nothing to match.
  const rendered = SAMPLES.map((messages) => ({ messages, jinja: renderJinja(compiled, messages, tokens) })).filter((r) => r.jinja !== null);
  const mismatch = rendered.find((r) => r.jinja !== family.render(r.messages, def))?.messages ?? (rendered.length < 2 ? SAMPLES[0] : undefined);
  if (mismatch) {
    return {
      template: null,
      family: family.name,
      stops: family.stops,
      note: `the chat template looks like ${family.name} but renders differently from Ollama's ${family.name} layout (e.g. for a ${mismatch.map((m) => m.role).join('/')} chat); add a TEMPLATE by hand`,
    };
  }
  return { template: family.goTemplate(def), family: family.name, stops: family.stops, note: null };
}

export interface ModelfileSpec {
  /** A GGUF path (absolute or relative to the Modelfile) or an Ollama model name. */
  readonly from: string;
  /** The GGUF LoRA beside the Modelfile, if any. */
  readonly adapter?: string;
  readonly template: OllamaTemplate;
  /** A comment line at the top. */
  readonly title: string;
}

function quoteParameter(value: string): string {
  return JSON.stringify(value);
}

export function modelfileText(spec: ModelfileSpec): string {
  const lines = [`# ${spec.title}`, `FROM ${spec.from}`];
  if (spec.adapter) lines.push(`ADAPTER ${spec.adapter}`);
  const t = spec.template;
  if (t.template !== null) {
    if (t.template.includes('"""')) throw new Error('a Go template containing """ cannot be written in a Modelfile');
    lines.push(`# Chat format: ${t.family}, translated from the model's Jinja chat template.`, `TEMPLATE """${t.template}"""`);
  } else if (t.note) {
    lines.push(`# No TEMPLATE: ${t.note}.`);
  }
  for (const stop of t.stops) lines.push(`PARAMETER stop ${quoteParameter(stop)}`);
  return lines.join('\n') + '\n';
}

/** The commands that run an export: Ollama (from the Modelfile) and llama.cpp. Paths are the folder's own. */
export function runCommands(spec: { folder: string; name: string; model: string; adapter?: string }): string[] {
  const q = (p: string) => (/^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`);
  const folder = q(spec.folder);
  return [
    `ollama create ${spec.name} -f ${folder}/Modelfile && ollama run ${spec.name}`,
    `llama-cli -m ${q(spec.model)}${spec.adapter ? ` --lora ${q(spec.adapter)}` : ''} -cnv`,
  ];
}
