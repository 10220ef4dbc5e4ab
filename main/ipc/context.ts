/** What the command handlers work with: the library, the engine host, the file workers, user paths and the event sink. */
import type { EventName, Events } from '../../preload/contract';
import type { HostClient } from '../host/client';
import type { FileWork } from '../services/file-work/client';
import type { Library } from '../store/index';
import type { UserPaths } from './paths';
import type { GgufFolders } from '../services/gguf-folders';

export interface HandlerContext {
  readonly library: Library;
  readonly host: HostClient;
  /** Reads users' files (imports, previews) off the main thread. */
  readonly files: FileWork;
  readonly paths: UserPaths;
  readonly mode: 'electron' | 'browser';
  readonly version: string;
  /** The folder holding starter/ and samples/ (see services/starter-resources.ts); absent where none ships (tests). */
  readonly resourcesDir?: string;
  /** The Hugging Face hub's base URL for models.download; https://huggingface.co where absent (tests serve a fake). */
  readonly hubUrl?: string;
  /** Where models.findGguf looks besides a chosen folder; the user's Ollama and LM Studio folders where absent. */
  readonly ggufFolders?: GgufFolders;
  emit<E extends EventName>(name: E, payload: Events[E]): void;
}
