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

/** A message (or the parts of one) as non-empty Buffer views, not copied [T-5]. */
export function toParts(message: unknown, name = 'message'): Buffer[] {
  if (message instanceof Uint8Array) {
    if (message.length === 0) return [];
    return [Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength)];
  }
  if (Array.isArray(message)) {
    const parts: Buffer[] = [];
    for (let i = 0; i < message.length; i++) {
      const part: unknown = message[i];
      if (!(part instanceof Uint8Array)) throw invalidArgType(`${name}[${i}]`, 'an instance of Uint8Array', part);
      if (part.length === 0) continue;
      parts.push(Buffer.isBuffer(part) ? part : Buffer.from(part.buffer, part.byteOffset, part.byteLength));
    }
    return parts;
  }
  throw invalidArgType(name, 'an instance of Uint8Array or an array of Uint8Array', message);
}

export function partsLength(parts: Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
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
