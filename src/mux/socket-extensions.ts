import type { KcmSocket } from './kcm-socket.js';
import type { KcmWorkerPort } from '../worker/worker-port.js';
import type { ConnectOptions, KcmConnector } from '../helpers/kcm-connector.js';

/**
 * The members of {@link KcmSocket} implemented above the multiplexor's layer:
 * `cloneForWorker()` and `KcmSocket.adopt()` in `src/worker/`, `connect()` in
 * `src/helpers/`.
 *
 * Why a hook: those layers import the socket at run time (a worker's socket is a
 * KcmSocket with another endpoint; the connector attaches through one), so the socket
 * cannot import them back without a cycle. The package's entry point (`src/index.ts`),
 * which loads every layer anyway, installs them once at load time; the socket's module
 * itself stays free of them, and the dependency runs one way.
 */
export interface SocketExtensions {
  cloneForWorker(origin: KcmSocket): KcmWorkerPort;
  adopt(port: KcmWorkerPort): KcmSocket;
  connect(socket: KcmSocket, options: ConnectOptions): KcmConnector;
}

let installed: SocketExtensions | undefined;

/** Called by the package's entry point. */
export function installSocketExtensions(extensions: SocketExtensions): void {
  installed = extensions;
}

/** The installed extensions; throws when the socket was loaded without the package's entry point. */
export function socketExtensions(what: string): SocketExtensions {
  if (installed === undefined) {
    throw new Error(`KcmSocket ${what}: the worker and helper layers are not loaded; import KcmSocket from 'kcm' (the package's entry point)`);
  }
  return installed;
}
