import { KcmError } from '../errors.js';
import type { Parser } from '../parsers/parser.js';

/** Options of {@link loadBpf}. */
export interface LoadBpfOptions {
  /** The ELF section of the program; default `'socket_kcm'`, else the only program section. */
  section?: string;
  /** A function name, where a section holds several programs. */
  program?: string;
}

/** A parser made from an eBPF ELF object (placeholder until the engine lands). */
export function loadBpf(object: Uint8Array | string, options?: LoadBpfOptions): Parser {
  void object;
  void options;
  throw new KcmError('EOPNOTSUPP', 'loadBpf: the eBPF engine is not built yet');
}
