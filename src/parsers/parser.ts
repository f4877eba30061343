/**
 * A message parser: the userspace form of KCM's BPF parser program.
 *
 * `data` holds the bytes that have arrived from the message's first byte on; it may run
 * past the message's end into the next one [P-2, F-6]. Return the message's total length
 * in bytes (header included) once it can be known, `0` when more bytes are needed, or a
 * negative errno to reject the stream [P-3].
 */
export type Parser = (data: Buffer) => number;
