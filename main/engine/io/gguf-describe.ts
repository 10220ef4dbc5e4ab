/**
 * What a GGUF file holds, from its header alone (no weight is read): kind, architecture, size, quantization,
 * tokenizer, chat template, and whether this engine can load it (and if not, why). For `lorasmith gguf inspect`,
 * the library's import and the list of models found in Ollama and LM Studio.
 */
import { GgufFile } from './gguf';
import { GGUF_ARCHITECTURES } from './gguf-arch';
import { DEQUANTIZABLE } from './gguf-quants';
import { fileTypeName } from './gguf-types';

export interface GgufSummary {
  readonly path: string;
  readonly version: number;
  readonly fileBytes: number;
  /** general.type: 'model', 'adapter', ... */
  readonly kind: string;
  readonly architecture: string;
  readonly name: string | null;
  readonly parameterCount: number;
  readonly tensorCount: number;
  /** ggml type -> number of tensors */
  readonly tensorTypes: Readonly<Record<string, number>>;
  /** general.file_type's name (Q4_K_M, F16...), else the type most of the values are stored in. */
  readonly quantization: string | null;
  readonly contextLength: number | null;
  readonly tokenizer: { readonly model: string; readonly pre: string | null; readonly tokens: number } | null;
  readonly hasChatTemplate: boolean;
  /** Why this engine cannot load it as a base model (empty when it can, as far as the header tells). */
  readonly unreadable: readonly string[];
}

export function describeGguf(path: string): GgufSummary {
  const file = new GgufFile(path);
  try {
    const architecture = file.string('general.architecture', 'unknown');
    const kind = file.string('general.type', 'model');
    const types: Record<string, number> = {};
    const values: Record<string, number> = {};
    let parameterCount = 0;
    for (const t of file.tensors.values()) {
      types[t.type.name] = (types[t.type.name] ?? 0) + 1;
      values[t.type.name] = (values[t.type.name] ?? 0) + t.count;
      parameterCount += t.count;
    }
    const byValues = Object.entries(values).sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
    const fileType = file.has('general.file_type') ? fileTypeName(file.number('general.file_type')) : null;
    const unreadable: string[] = [];
    if (kind !== 'model') unreadable.push(`it is ${/^[aeiou]/i.test(kind) ? 'an' : 'a'} ${kind} file, not a base model`);
    else if (file.tensors.size === 0) unreadable.push('it holds no weights (a vocabulary-only file)');
    if (!GGUF_ARCHITECTURES.includes(architecture)) unreadable.push(`architecture '${architecture}' is not supported (supported: ${GGUF_ARCHITECTURES.join(', ')})`);
    const unknownTypes = Object.keys(types).filter((t) => !DEQUANTIZABLE.includes(t));
    if (unknownTypes.length > 0) unreadable.push(`tensor types ${unknownTypes.join(', ')} cannot be read yet`);
    const tokens = file.array('tokenizer.ggml.tokens');
    const contextKey = `${architecture}.context_length`;
    return {
      path,
      version: file.version,
      fileBytes: file.fileBytes,
      kind,
      architecture,
      name: file.has('general.name') ? file.string('general.name') : null,
      parameterCount,
      tensorCount: file.tensors.size,
      tensorTypes: types,
      quantization: fileType ?? byValues,
      contextLength: file.has(contextKey) ? file.number(contextKey) : null,
      tokenizer: tokens
        ? { model: file.string('tokenizer.ggml.model', 'unknown'), pre: file.has('tokenizer.ggml.pre') ? file.string('tokenizer.ggml.pre') : null, tokens: tokens.length }
        : null,
      hasChatTemplate: file.has('tokenizer.chat_template'),
      unreadable,
    };
  } finally {
    file.close();
  }
}
