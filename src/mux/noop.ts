/** Does nothing: the listener that marks an error or a rejection as handled elsewhere. */
export function noop(): void {}
