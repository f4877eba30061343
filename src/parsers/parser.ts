/**
 * A message parser: the userspace form of KCM's BPF parser program.
 *
 * `data` holds the bytes that have arrived from the message's first byte on; it may run
 * past the message's end into the next one [P-2, F-6]. Return the message's total length
 * in bytes (header included) once it can be known, `0` when more bytes are needed, or a
 * negative errno to reject the stream [P-3].
 */
export type Parser = (data: Buffer) => number;

/**
 * The same parser over `chunk[start, end)` as if called with that view: lets the stream
 * parser frame messages in place, without a view per message. Parsers built into kcm
 * (compiled eBPF programs) carry one under {@link kPositionalParser}.
 */
export type PositionalParser = (chunk: Buffer, start: number, end: number) => number;

/** The property under which a parser carries its {@link PositionalParser}. */
export const kPositionalParser: unique symbol = Symbol('kcm.positionalParser');

/** The positional form of a parser, when it has one. */
export function positionalParser(parser: Parser): PositionalParser | undefined {
  return (parser as Parser & { [kPositionalParser]?: PositionalParser })[kPositionalParser];
}
