/**
 * Raw mode, as eBPF runtimes are tested on their own: r1 points to a memory block, r2 is
 * its length, loads and stores through r1 are bounds-checked against the block, the legacy
 * packet loads read the same block, and the result is r0 as 64 bits.
 */
import { KcmError } from '../errors.js';
import { compileRaw, type RawRun } from './compiler.js';
import { isElf, readElf } from './elf-reader.js';
import { Interpreter } from './interpreter.js';
import { linkProgram, rawProgram, type LinkedProgram } from './linker.js';
import { MAX_MEM } from './runtime.js';
import { verify, type Analysis } from './verifier.js';

/** A program verified for raw mode, runnable compiled or interpreted. */
export interface RawProgram {
  readonly program: LinkedProgram;
  readonly analysis: Analysis;
  /** Runs the compiled program on `mem` (which it may modify). */
  run(mem: Uint8Array): RawRun;
  /** Runs the interpreter on `mem` (which it may modify). */
  interpret(mem: Uint8Array): RawRun;
}

/**
 * Loads a program for raw mode: instruction bytes, or an ELF object (`section`/`program`
 * pick the program as for `loadBpf`). Throws `KcmError` `EINVAL` when it is refused.
 */
export function loadRaw(bytes: Uint8Array, options: { elf?: boolean; section?: string; program?: string } = {}): RawProgram {
  const elf = options.elf ?? isElf(bytes);
  const program = elf ? linkProgram(readElf(bytes), options) : rawProgram(bytes);
  const analysis = verify(program, 'raw');
  const compiled = compileRaw(program, analysis);
  const interpreter = new Interpreter(program, analysis);
  const check = (mem: Uint8Array): void => {
    if (mem.length > MAX_MEM) throw new KcmError('EINVAL', `bpf: memory block of ${mem.length} bytes exceeds ${MAX_MEM}`);
  };
  return {
    program,
    analysis,
    run(mem) {
      check(mem);
      return compiled(mem);
    },
    interpret(mem) {
      check(mem);
      const res = interpreter.runRaw(mem);
      if (res.status === 'abort') return { status: 'exit', r0: 0n };
      return { status: res.status, r0: res.r0 };
    },
  };
}
