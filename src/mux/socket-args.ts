import { KcmError, checkInteger, invalidArgType } from '../errors.js';
import type { KcmSocketOptions, KcmSocketType } from './socket-types.js';

/** Linux's `net.core.wmem_default` and `rmem_default`. */
const DEFAULT_BUFFER_SIZE = 212992;

/**
 * The options of `KcmSocket.create()`, checked, defaults filled in.
 *
 * @throws KcmError `ESOCKTNOSUPPORT` for an unknown `type` [O-1a]; TypeError/RangeError otherwise.
 */
export function checkSocketOptions(options: KcmSocketOptions): { type: KcmSocketType; sendBufferSize: number; receiveBufferSize: number } {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const type = options.type ?? 'dgram';
  if (typeof type !== 'string') throw invalidArgType('options.type', 'of type string', type);
  if (type !== 'dgram' && type !== 'seqpacket') {
    throw new KcmError('ESOCKTNOSUPPORT', `socket type '${type}' is not supported: use 'dgram' or 'seqpacket'`);
  }
  const sendBufferSize = options.sendBufferSize === undefined ? DEFAULT_BUFFER_SIZE : checkInteger('options.sendBufferSize', options.sendBufferSize, 1);
  const receiveBufferSize = options.receiveBufferSize === undefined ? DEFAULT_BUFFER_SIZE : checkInteger('options.receiveBufferSize', options.receiveBufferSize, 1);
  return { type, sendBufferSize, receiveBufferSize };
}

/** The error of a call on a closed KCM socket [O-6]. */
export function badf(what: string): KcmError {
  return new KcmError('EBADF', `${what}: the KCM socket is closed`);
}

/**
 * The length of a message (one Uint8Array, or the parts of one), checked: `index` names
 * the entry of a sendMany() call, -1 a single message. Nothing is allocated.
 */
export function messageLength(message: unknown, index: number): number {
  if (message instanceof Uint8Array) return message.length;
  const name = index < 0 ? 'message' : `messages[${index}]`;
  if (!Array.isArray(message)) throw invalidArgType(name, 'an instance of Uint8Array or an array of Uint8Array', message);
  let n = 0;
  for (let i = 0; i < message.length; i++) {
    const part: unknown = message[i];
    if (!(part instanceof Uint8Array)) throw invalidArgType(`${name}[${i}]`, 'an instance of Uint8Array', part);
    n += part.length;
  }
  return n;
}

export function partsLength(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (let i = 0; i < parts.length; i++) n += parts[i]!.length;
  return n;
}

export function checkBool(name: string, value: unknown, dflt: boolean): boolean {
  if (value === undefined) return dflt;
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

export function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
  return signal;
}

export function checkOptions<T>(options: T): T {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  return options;
}
