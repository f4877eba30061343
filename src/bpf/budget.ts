/**
 * What a run may spend, and what each part of a program costs. The budget stands for time,
 * not instructions: an instruction costs 1 unit, one that runs far slower costs more, a
 * helper costs by the bytes it touches, and a block of a very large function pays for the
 * longer way V8 takes to reach it. The compiled code and the interpreter charge exactly the
 * same units at the same points (on entering a block, before a helper's work), so they end
 * a run with -ELOOP at the same place. Both also start each run with the same stack bytes
 * zeroed ({@link stackBytesUsed}).
 */
import type { LinkedProgram } from './linker.js';
import { BPF_ALU64, BPF_CALL, BPF_DIV, BPF_JMP, BPF_JMP32, BPF_MOD, BPF_PSEUDO_CALL, isLddw, opClass } from './opcodes.js';
import { Access, type Analysis } from './verifier.js';
import { MAX_FRAMES, STACK_SIZE } from './runtime.js';

/**
 * Units a run may spend before it is stopped with -ELOOP: about 5 ms of CPU compiled and
 * 40 ms interpreted for the slowest programs on a 2-core 2020s server (see
 * bench/bpf-runaway.ts).
 */
export const RUN_BUDGET = 300_000;

/** 64-bit division and modulo take a BigInt path for operands above 2^32 (or 2^31 signed). */
const COST_DIV64 = 24;
/** `bpf_ktime_get_ns` reads a BigInt clock. */
const COST_KTIME = 8;
/** Fixed part of a call of `bpf_trace_printk` (the debug log), before its format bytes. */
export const COST_PRINTK = 64;
/** Fixed part of a call of `bpf_skb_load_bytes`, before its bytes. */
export const COST_LOAD_BYTES = 4;
/** A bpf-to-bpf call: a JavaScript call with ten arguments. */
const COST_CALL = 8;
/** Blocks of a function past this count pay for dispatch: one unit per this many blocks. */
const DISPATCH_BLOCKS = 16;

/** Units of a `bpf_skb_load_bytes` of `n` bytes. */
export function loadBytesCost(n: number): number {
  return COST_LOAD_BYTES + (n >>> 4);
}

/** Units of a `bpf_trace_printk` with a format of `n` bytes. */
export function printkCost(n: number): number {
  return COST_PRINTK + n;
}

/** The units charged on entering each block, by its first instruction (0 elsewhere). */
export interface Costs {
  /** Whether runs are charged at all: a program without loops, calls or byte helpers ends by itself quickly. */
  readonly budgeted: boolean;
  readonly atBlock: Int32Array;
}

function insnCost(prog: LinkedProgram, pc: number): number {
  const insn = prog.insns[pc]!;
  const op = insn.code & 0xf0;
  const cls = opClass(insn.code);
  if (cls === BPF_ALU64 && (op === BPF_DIV || op === BPF_MOD)) return COST_DIV64;
  if (insn.code === (BPF_JMP | BPF_CALL)) {
    if (insn.src === BPF_PSEUDO_CALL) return COST_CALL;
    if (insn.imm === 5) return COST_KTIME;
  }
  return 1;
}

/** Costs of every block of a verified program. */
export function blockCosts(prog: LinkedProgram, analysis: Analysis): Costs {
  const atBlock = new Int32Array(prog.insns.length);
  let byteHelpers = false;
  for (const fn of analysis.functions) {
    const blocks = fn.blocks;
    const dispatch = Math.floor(blocks.length / DISPATCH_BLOCKS);
    for (let bi = 0; bi < blocks.length; bi++) {
      const b = blocks[bi]!;
      const next = bi + 1 < blocks.length ? blocks[bi + 1]! : fn.end;
      let cost = dispatch;
      for (let pc = b; pc < next; pc++) {
        const insn = prog.insns[pc]!;
        cost += insnCost(prog, pc);
        if (insn.code === (BPF_JMP | BPF_CALL) && insn.src === 0 && (insn.imm === 6 || insn.imm === 26 || insn.imm === 68)) byteHelpers = true;
        if (isLddw(insn.code)) pc++;
        // A block ends at its jump or exit; what follows until the next block is unreachable.
        const cls = opClass(insn.code);
        if ((cls === BPF_JMP || cls === BPF_JMP32) && (insn.code & 0xf0) !== BPF_CALL) break;
      }
      atBlock[b] = cost;
    }
  }
  return { budgeted: analysis.hasLoops || analysis.functions.length > 1 || byteHelpers, atBlock };
}

/**
 * The stack bytes a run may touch: every frame the program's calls can reach, when it uses
 * the stack at all (0 otherwise, so a parser that never touches it pays nothing).
 */
export function stackBytesUsed(analysis: Analysis): number {
  let uses = false;
  for (const a of analysis.access) {
    if (a !== undefined && (a.kind === Access.StackStatic || a.kind === Access.StackOwnChecked || a.kind === Access.StackCallerChecked)) {
      uses = true;
      break;
    }
  }
  return uses ? Math.min(analysis.functions.length, MAX_FRAMES) * STACK_SIZE : 0;
}
