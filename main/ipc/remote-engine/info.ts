/** What Settings shows about the remote engine: where it is, the machine it runs on, or why it cannot be used now. */
import type { RemoteEngineInfo } from '../../../preload/contract';
import type { HostClient } from '../../host/client';
import { describeMachine } from '../../host/machine';
import { remoteTarget } from '../../host/remote/connection';
import { toAppError } from '../errors';

export async function remoteEngineInfo(host: Pick<HostClient, 'remote' | 'call'>, waitMs = 5000): Promise<RemoteEngineInfo | null> {
  const remote = host.remote;
  if (!remote) return null;
  let address = remote.address;
  let timer: NodeJS.Timeout | undefined;
  try {
    address = remoteTarget(remote).shown;
    const machine = await Promise.race([
      host.call({ type: 'machine' }),
      new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`no answer from ${address} within ${waitMs / 1000} s`)), waitMs))),
    ]);
    return { address, machine: `${describeMachine(machine)}, Lorasmith ${machine.remote?.version ?? '?'}`, problem: null };
  } catch (error) {
    return { address, machine: null, problem: toAppError(error).message };
  } finally {
    clearTimeout(timer);
  }
}
