/**
 * `loadBpf`: the userspace form of `bpf(BPF_PROG_LOAD)` followed by `SIOCKCMATTACH`'s
 * parser program. Reads an eBPF ELF object, links the program, verifies it and compiles it
 * into a {@link Parser} [§10, F-1..F-8].
 */
import { readFileSync } from 'node:fs';
import { KcmError, invalidArgType } from '../errors.js';
import { printable } from './printable.js';
import type { Parser } from '../parsers/parser.js';
import { compileParser } from './compiler.js';
import { Interpreter } from './interpreter.js';
import { readElf } from './elf-reader.js';
import { linkProgram, type LinkedProgram } from './linker.js';
import { verify, type Analysis } from './verifier.js';

/** Options of {@link loadBpf}. */
export interface LoadBpfOptions {
  /** The ELF section of the program; default `'socket_kcm'`, else the only program section. */
  section?: string;
  /** A function name, where a section holds several programs. */
  program?: string;
}

/** The largest object file accepted (far above any parser program). */
export const MAX_OBJECT_BYTES = 64 * 1024 * 1024;

/** Reads `object` (bytes or a file path) into bytes; argument mistakes throw `TypeError`. */
export function objectBytes(object: Uint8Array | string): Uint8Array {
  if (typeof object === 'string') {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(object);
    } catch (err) {
      const code = (err as { code?: string }).code;
      const path = printable(object);
      if (code === 'ENOENT') throw new KcmError('ENOENT', `bpf: cannot read '${path}': no such file`, { cause: err });
      if (code === 'EACCES') throw new KcmError('EACCES', `bpf: cannot read '${path}': permission denied`, { cause: err });
      throw new KcmError('EINVAL', `bpf: cannot read '${path}': ${printable((err as Error).message)}`, { cause: err });
    }
    return bytes;
  }
  if (!(object instanceof Uint8Array)) throw invalidArgType('object', 'an instance of Uint8Array or a string (a file path)', object);
  return object;
}

function checkOptions(options: LoadBpfOptions | undefined): LoadBpfOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  if (options.section !== undefined && typeof options.section !== 'string') throw invalidArgType('options.section', 'of type string', options.section);
  if (options.program !== undefined && typeof options.program !== 'string') throw invalidArgType('options.program', 'of type string', options.program);
  return options;
}

/** A loaded program: what the object held, what the verifier proved. */
export interface LoadedProgram {
  readonly program: LinkedProgram;
  readonly analysis: Analysis;
}

/** Reads, links and verifies a program of an ELF object for parser mode (no compilation). */
export function loadProgram(object: Uint8Array | string, options?: LoadBpfOptions): LoadedProgram {
  const opts = checkOptions(options);
  const bytes = objectBytes(object);
  if (bytes.length > MAX_OBJECT_BYTES) throw new KcmError('EINVAL', `bpf: the object is ${bytes.length} bytes, more than ${MAX_OBJECT_BYTES}`);
  const program = linkProgram(readElf(bytes), opts);
  return { program, analysis: verify(program, 'parser') };
}

/**
 * A parser made from an eBPF ELF object as `clang -O2 -target bpf -c prog.c` builds it (or
 * its path). The program is verified and compiled once; the returned parser sees each
 * message's bytes as its packet [F-3, F-6] and returns the low 32 bits of r0, signed [F-4].
 * A run that exceeds the instruction budget returns -ELOOP. Throws `KcmError` `EINVAL` when
 * the object is malformed or the program is refused (the message names the instruction
 * and the reason), `ENOENT` when a path does not exist.
 */
export function loadBpf(object: Uint8Array | string, options?: LoadBpfOptions): Parser {
  const { program, analysis } = loadProgram(object, options);
  try {
    return compileParser(program, analysis);
  } catch (err) {
    // Code generation can be disabled (--disallow-code-generation-from-strings); the
    // interpreter gives the same results, only slower.
    if (!(err instanceof EvalError)) throw err;
    const interpreter = new Interpreter(program, analysis);
    return (data) => interpreter.runParser(data);
  }
}
