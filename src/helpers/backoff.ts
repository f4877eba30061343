import { invalidArgType, outOfRange } from '../errors.js';

/** Exponential backoff between connection attempts. */
export interface BackoffOptions {
  /** Milliseconds before the first retry; default 100. */
  initial?: number;
  /** Upper bound of any delay, in milliseconds; default 10000. */
  max?: number;
  /** Growth of the delay per consecutive failure; default 2. */
  factor?: number;
  /**
   * Spread retries of many clients: each delay is drawn uniformly from its upper half
   * ("equal jitter"), so it is never shorter than half the computed delay; default true.
   */
  jitter?: boolean;
}

/** A checked backoff policy. */
export class Backoff {
  readonly initial: number;
  readonly max: number;
  readonly factor: number;
  readonly jitter: boolean;

  constructor(options: BackoffOptions = {}, name = 'options.backoff') {
    if (options === null || typeof options !== 'object') throw invalidArgType(name, 'of type object', options);
    this.initial = checkDelay(`${name}.initial`, options.initial, 100);
    this.max = checkDelay(`${name}.max`, options.max, Math.max(10000, this.initial));
    if (this.max < this.initial) throw outOfRange(`${name}.max`, `>= ${name}.initial (${this.initial})`, this.max);
    const factor = options.factor ?? 2;
    if (typeof factor !== 'number') throw invalidArgType(`${name}.factor`, 'of type number', factor);
    if (!Number.isFinite(factor) || factor < 1) throw outOfRange(`${name}.factor`, 'a finite number >= 1', factor);
    this.factor = factor;
    const jitter = options.jitter ?? true;
    if (typeof jitter !== 'boolean') throw invalidArgType(`${name}.jitter`, 'of type boolean', jitter);
    this.jitter = jitter;
  }

  /**
   * The delay before attempt `attempt` (1 for the first retry after a failure):
   * `min(max, initial * factor^(attempt-1))`, then jittered into its upper half.
   * Always within [initial / 2, max] with jitter, [initial, max] without.
   */
  delay(attempt: number, random: () => number = Math.random): number {
    const n = Math.max(1, Math.floor(attempt));
    // Exponent capped so that the power never overflows to Infinity.
    const base = Math.min(this.max, this.initial * this.factor ** Math.min(n - 1, 1024));
    const bounded = Number.isFinite(base) ? base : this.max;
    if (!this.jitter) return Math.round(bounded);
    return Math.round(bounded / 2 + random() * (bounded / 2));
  }
}

function checkDelay(name: string, value: unknown, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < 1 || value > 0x7fffffff) throw outOfRange(name, 'an integer >= 1 and <= 2147483647 (milliseconds)', value);
  return value;
}
