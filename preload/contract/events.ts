import type { BaseModel, PrecisionProgress, TrainingProgress, TrainingRun } from './domain';

/** Events main pushes to the renderer: name -> payload. */
export interface Events {
  'train.progress': TrainingProgress;
  'train.finished': { run: TrainingRun };
  'train.precisionProgress': PrecisionProgress;
  'chat.token': { requestId: string; text: string; tokenId: number };
  'host.status': { state: 'starting' | 'ready' | 'busy' | 'died'; detail?: string };
  'download.progress': { id: string; receivedBytes: number; totalBytes: number; file?: string };
  'download.finished': {
    id: string;
    repoId: string;
    status: 'done' | 'failed' | 'cancelled';
    model: BaseModel | null;
    error: string | null;
  };
}

export type EventName = keyof Events;

export const EVENT_NAMES = [
  'train.progress', 'train.finished', 'train.precisionProgress', 'chat.token', 'host.status', 'download.progress', 'download.finished',
] as const satisfies readonly EventName[];
