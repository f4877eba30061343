import type { MessagePort } from 'node:worker_threads';
import { MessagePort as MessagePortClass } from 'node:worker_threads';
import { invalidArgType } from '../errors.js';
import type { KcmSocketType } from '../mux/kcm-socket.js';

/**
 * What {@link KcmSocket.cloneForWorker} returns: a plain object that structured cloning
 * carries to a worker (pass it in `workerData` or `postMessage`, with `transferList`),
 * where {@link KcmSocket.adopt} turns it into a socket.
 */
export interface KcmWorkerPort {
  readonly kind: 'kcm-worker-port';
  /** The worker's end of the channel to the socket's proxy. */
  readonly port: MessagePort;
  /** Counters shared with the proxy (what the worker has read, for its death). */
  readonly shared: SharedArrayBuffer;
  readonly type: KcmSocketType;
  readonly sendBufferSize: number;
  readonly receiveBufferSize: number;
  /** The socket's index in the multiplexor [O-2]. */
  readonly index: number;
  /** `[port]`: pass as the `transferList` of `new Worker()` or `postMessage()`. */
  readonly transferList: MessagePort[];
}

/** Throws unless `value` is a {@link KcmWorkerPort} as structured cloning delivers it. */
export function checkWorkerPort(value: unknown): KcmWorkerPort {
  const v = value as Partial<KcmWorkerPort> | null;
  if (v === null || typeof v !== 'object' || v.kind !== 'kcm-worker-port') {
    throw invalidArgType('port', 'an object returned by cloneForWorker()', value);
  }
  if (!(v.port instanceof MessagePortClass)) throw invalidArgType('port.port', 'an instance of MessagePort (transfer it with transferList)', v.port);
  if (!(v.shared instanceof SharedArrayBuffer)) throw invalidArgType('port.shared', 'an instance of SharedArrayBuffer', v.shared);
  if (v.type !== 'dgram' && v.type !== 'seqpacket') throw invalidArgType('port.type', "'dgram' or 'seqpacket'", v.type);
  for (const name of ['sendBufferSize', 'receiveBufferSize', 'index'] as const) {
    if (typeof v[name] !== 'number') throw invalidArgType(`port.${name}`, 'of type number', v[name]);
  }
  return v as KcmWorkerPort;
}
