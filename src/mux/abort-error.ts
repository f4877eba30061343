/** The error a call rejects with when its AbortSignal aborts, as Node's own APIs do. */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';

  constructor(reason?: unknown) {
    super('The operation was aborted', reason === undefined ? undefined : { cause: reason });
  }

  override get name(): string {
    return 'AbortError';
  }
}
