/**
 * Names from an object file (sections, symbols) are bytes chosen by whoever built it: they
 * reach terminals (`kcm bpf dump`) and error messages only through {@link printable}, so
 * an escape sequence in a name cannot move a cursor, clear a screen or forge a line.
 */

/**
 * `text` with C0 controls, DEL and C1 controls written as `\xNN` and backslashes doubled,
 * so that every escape is unambiguous.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  if (!/[\x00-\x1f\x7f-\x9f\\]/.test(text)) return text;
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\\]/g, (c) => (c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/**
 * `text` with control characters escaped as in {@link printable} but backslashes kept: for
 * messages that are already escaped (every `EINVAL` of the engine), so escaping twice
 * changes nothing.
 */
export function noControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
