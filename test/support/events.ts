/** The next event of a name (and matching a condition) that an Api emits, as a promise. */
import type { Api, Events } from '../../preload/contract';

export function nextEvent<E extends keyof Events>(api: Api, name: E, where: (p: Events[E]) => boolean = () => true): Promise<Events[E]> {
  return new Promise((resolve) => {
    const off = api.on(name, (payload) => {
      if (where(payload)) {
        off();
        resolve(payload);
      }
    });
  });
}
