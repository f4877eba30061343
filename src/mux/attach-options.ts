import type * as net from 'node:net';
import { KcmError, checkInteger, invalidArgType } from '../errors.js';
import type { Multiplexor } from './multiplexor.js';
import { kPsock, type AttachOptions, type Psock } from './psock.js';
import { isTcpStream } from './transport-check.js';

/** Linux uses the TCP receive buffer, which autotuning grows to a few MiB [P-6, X-10]. */
export const DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024;

/** {@link AttachOptions} checked, defaults filled in. */
export type CheckedAttachOptions = Required<AttachOptions>;

/**
 * Checks the options of an attach (`sock.attach`, and every helper that attaches for the
 * application): `parser` a function, `maxMessageSize` a positive integer (default 8 MiB),
 * `assemblyTimeout` milliseconds (default 0: none).
 *
 * @throws TypeError `ERR_INVALID_ARG_TYPE`, RangeError `ERR_OUT_OF_RANGE`.
 */
export function checkAttachOptions(options: unknown): CheckedAttachOptions {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const o = options as AttachOptions;
  const parser = o.parser;
  if (typeof parser !== 'function') throw invalidArgType('options.parser', 'of type function', parser);
  const maxMessageSize = o.maxMessageSize === undefined
    ? DEFAULT_MAX_MESSAGE_SIZE
    : checkInteger('options.maxMessageSize', o.maxMessageSize, 1);
  const assemblyTimeout = o.assemblyTimeout === undefined
    ? 0
    : checkInteger('options.assemblyTimeout', o.assemblyTimeout, 0, 0x7fffffff);
  return { parser, maxMessageSize, assemblyTimeout };
}

/**
 * Throws unless `transport` can be attached to `mux`: KcmError `EOPNOTSUPP` when it is
 * not a TCP stream, is destroyed or ended; `EALREADY` when it is attached
 * already, here or to another multiplexor.
 */
export function checkAttachable(transport: net.Socket, mux: Multiplexor): void {
  const reason = isTcpStream(transport);
  if (reason !== undefined) throw new KcmError('EOPNOTSUPP', `cannot attach: ${reason}`);
  const owner = (transport as net.Socket & { [kPsock]?: Psock })[kPsock];
  if (owner !== undefined) {
    throw new KcmError('EALREADY', owner.mux === mux
      ? `transport is already attached to this multiplexor (psock-${owner.index})`
      : 'transport is already attached to another multiplexor');
  }
}
