/**
 * Errors reported by KCM itself, named as Linux names them.
 *
 * Argument mistakes are Node-style `TypeError`/`RangeError` (see {@link invalidArgType},
 * {@link outOfRange}); everything the multiplexor, a psock or a parser reports at run time
 * is a {@link KcmError} whose `code` is the Linux errno name and `errno` its positive value.
 */

/** Linux errno values used by KCM (spec §8), by name. */
export const errnos = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  EINVAL: 22,
  EPIPE: 32,
  ELOOP: 40,
  ENODATA: 61,
  EPROTO: 71,
  EBADMSG: 74,
  ESTRPIPE: 86,
  EMSGSIZE: 90,
  ENOPROTOOPT: 92,
  EPROTONOSUPPORT: 93,
  ESOCKTNOSUPPORT: 94,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTDOWN: 112,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  ECANCELED: 125,
} as const;

/** A Linux errno name known to kcm. */
export type ErrnoName = keyof typeof errnos;

const names = new Map<number, ErrnoName>();
for (const [name, value] of Object.entries(errnos)) names.set(value, name as ErrnoName);

/** The errno name for a positive errno value, or undefined when kcm does not know it. */
export function errnoName(errno: number): ErrnoName | undefined {
  return names.get(errno);
}

/** An error reported by KCM: `code` is the Linux errno name, `errno` its positive value. */
export class KcmError extends Error {
  /** The Linux errno name, such as `'EMSGSIZE'`. */
  readonly code: ErrnoName;
  /** The positive errno value, such as 90. */
  readonly errno: number;

  constructor(code: ErrnoName, message?: string, options?: { cause?: unknown; errno?: number }) {
    super(message ?? code, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.errno = options?.errno ?? errnos[code];
  }

  override get name(): string {
    return 'KcmError';
  }

  /**
   * The error for a parser's negative return value [P-3, X-4]: the negated value's errno
   * name, or `EBADMSG` carrying the unknown number as `errno`.
   */
  static fromParserReturn(value: number, detail?: string): KcmError {
    const errno = -value;
    const name = errnoName(errno);
    const what = detail === undefined ? '' : `${detail}: `;
    if (name !== undefined) return new KcmError(name, `${what}parser rejected the stream with -${name} (${value})`);
    return new KcmError('EBADMSG', `${what}parser rejected the stream with ${value} (unknown errno)`, { errno });
  }
}

/** Node-style `TypeError` with `code: 'ERR_INVALID_ARG_TYPE'`. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

/** Node-style `RangeError` with `code: 'ERR_OUT_OF_RANGE'`. */
export function outOfRange(name: string, rule: string, actual: unknown): RangeError {
  const err = new RangeError(`The value of "${name}" is out of range. It must be ${rule}. Received ${describe(actual)}`);
  (err as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return err;
}

/** Node-style `Error` with `code: 'ERR_INVALID_STATE'`: the call is not allowed in the object's current state. */
export function invalidState(message: string): Error {
  const err = new Error(`Invalid state: ${message}`);
  (err as Error & { code: string }).code = 'ERR_INVALID_STATE';
  return err;
}

/** Node-style `TypeError` with `code: 'ERR_INVALID_ARG_VALUE'`. */
export function invalidArgValue(name: string, rule: string, actual: unknown): TypeError {
  const err = new TypeError(`The argument "${name}" ${rule}. Received ${describe(actual)}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
  return err;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return `${typeof value} (${String(value)})`;
  if (typeof value === 'string') return `type string (${JSON.stringify(value.length > 28 ? `${value.slice(0, 25)}...` : value)})`;
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`;
  const ctor = (value as object).constructor;
  return ctor?.name ? `an instance of ${ctor.name}` : typeof value;
}

/** Throws unless `value` is an integer in [min, max]. */
export function checkInteger(name: string, value: unknown, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(name, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer >= ${min} and <= ${max}`, value);
  }
  return value;
}
