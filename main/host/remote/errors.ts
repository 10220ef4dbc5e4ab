/** Why a remote engine could not serve: each code names what the user does about it. */
export type RemoteEngineErrorCode =
  /** The address is not a loopback address:port (a remote engine is reached through an SSH tunnel). */
  | 'REMOTE_ADDRESS_INVALID'
  /** Nothing answers at the address: the server or the tunnel is not running. */
  | 'REMOTE_ENGINE_UNREACHABLE'
  /** The server answered but refused the token. */
  | 'REMOTE_ENGINE_REFUSED'
  /** The two sides run different Lorasmith versions or protocols. */
  | 'REMOTE_VERSION_MISMATCH'
  /** The connection ended while a request was running. */
  | 'REMOTE_ENGINE_LOST'
  /** An engine request named content the remote does not hold (send it first). */
  | 'CONTENT_MISSING';

export class RemoteEngineError extends Error {
  override readonly name = 'RemoteEngineError';
  constructor(
    readonly code: RemoteEngineErrorCode,
    message: string,
  ) {
    super(message);
  }
}
