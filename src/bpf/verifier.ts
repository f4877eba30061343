/**
 * The verifier: checks a linked program before anything runs, and records for the compiler
 * and the interpreter what it proved about each memory access.
 *
 * It refuses what the kernel's verifier would refuse for these programs: unknown opcodes and
 * reserved fields that are not zero, jumps out of their function, falling off the end, reads
 * of registers never written (r0 at exit, r1-r5 after a call), writes to r10, stack accesses
 * outside the 512-byte frame, memory accesses through anything but the context, the stack,
 * global data or the raw-mode memory block, unknown helpers, recursion, more than 8 frames
 * and more than 1M instructions. Loops are allowed: the run-time budget ends a runaway run.
 *
 * The analysis is a data-flow fixpoint over each function's blocks. Each register holds a
 * type (unset, scalar with an optional known value, or a pointer into one region with an
 * optional known offset); joins of different pointer kinds cannot be dereferenced. Stack
 * slots remember spilled registers so that a spilled context or stack pointer stays usable.
 */
import { KcmError } from '../errors.js';
import { disassemble } from './disassembler.js';
import { printable } from './printable.js';
import type { LinkedProgram } from './linker.js';
import { MAX_INSNS } from './linker.js';
import {
  BPF_ABS,
  BPF_ADD,
  BPF_ALU,
  BPF_AND,
  BPF_ARSH,
  BPF_LSH,
  BPF_OR,
  BPF_RSH,
  BPF_XOR,
  BPF_ALU64,
  BPF_ATOMIC,
  BPF_CALL,
  BPF_CMPXCHG,
  BPF_DIV,
  BPF_DW,
  BPF_END,
  BPF_EXIT,
  BPF_FETCH,
  BPF_IND,
  BPF_JA,
  BPF_JMP,
  BPF_JMP32,
  BPF_LD,
  BPF_LDX,
  BPF_MEM,
  BPF_MEMSX,
  BPF_MOD,
  BPF_MOV,
  BPF_NEG,
  BPF_PSEUDO_CALL,
  BPF_PSEUDO_KFUNC_CALL,
  BPF_PSEUDO_MAP_FD,
  BPF_PSEUDO_MAP_VALUE,
  BPF_ST,
  BPF_STX,
  BPF_SUB,
  BPF_W,
  BPF_X,
  BPF_XCHG,
  FP,
  HELPERS,
  REG_COUNT,
  isLddw,
  opClass,
  sizeBytes,
  type Insn,
} from './opcodes.js';
import { CTX_CB, CTX_CB_SIZE, CTX_DATA, CTX_DATA_END, CTX_LEN, CTX_READABLE_END, MAX_FRAMES, STACK_SIZE } from './runtime.js';
import { alu32, alu64, endian, immToU64, jumpTaken } from './semantics.js';

/** How a program is run: as a KCM parser on a `__sk_buff`, or raw on a memory block. */
export type Mode = 'parser' | 'raw';

/** What the verifier proved about one memory access (or a helper's memory argument). */
export const enum Access {
  /** `skb->len` (or its low bytes): `at` = byte offset in the field. */
  CtxLen = 1,
  /** `skb->cb[]`: `at` = byte offset in cb. */
  CtxCb,
  /** Another readable context field: reads as 0. */
  CtxZero,
  /** The function's own frame at a known offset from r10: `at` (negative). */
  StackStatic,
  /** The function's own frame, offset known only at run time. */
  StackOwnChecked,
  /** A caller's frame (a pointer received as an argument), checked at run time. */
  StackCallerChecked,
  /** The raw-mode memory block, checked at run time. */
  MemChecked,
  /** Data region `region` at a known offset `at`. */
  DataStatic,
  /** Data region `region`, checked at run time. */
  DataChecked,
}

export interface MemAccess {
  readonly kind: Access;
  readonly at: number;
  readonly region: number;
}

/** One function of the program: `[start, end)`, its block leaders and loop headers. */
export interface FunctionInfo {
  readonly start: number;
  readonly end: number;
  /** Reachable block starts, ascending. */
  readonly blocks: readonly number[];
  /** Blocks entered by a backward jump. */
  readonly loopHeaders: ReadonlySet<number>;
}

/** What the verifier hands to the compiler and the interpreter. */
export interface Analysis {
  readonly mode: Mode;
  readonly functions: readonly FunctionInfo[];
  /** The function index of each function start, by instruction index. */
  readonly functionAt: ReadonlyMap<number, number>;
  /** Per instruction: what a load, store or helper memory argument touches. */
  readonly access: readonly (MemAccess | undefined)[];
  /** Per instruction: reached by some path. */
  readonly reachable: Uint8Array;
  /** True when some function has a loop (a backward jump), so runs need a budget. */
  readonly hasLoops: boolean;
  /** True when the program touches `skb->cb`. */
  readonly usesCb: boolean;
  /** Instructions the analysis processed, revisits included (at most {@link MAX_PROCESSED}). */
  readonly processed: number;
  /**
   * True when a pointer's value may reach a number (pointer - pointer, a partial copy, a
   * comparison, a return): allowed as for privileged kernel loads, but the number depends
   * on kcm's address layout.
   */
  readonly leaksPointers: boolean;
}

const enum Kind {
  Uninit,
  Scalar,
  Ctx,
  Stack,
  Mem,
  Data,
  Mixed,
}

interface Reg {
  readonly k: Kind;
  /** Pointers: known offset from the region start (stack: from r10), or null. */
  readonly off: number | null;
  /** Stack pointers: into this function's own frame. */
  readonly own: boolean;
  /** Data pointers: the region index. */
  readonly region: number;
  /** Scalars: the known unsigned 64-bit value, or null. */
  readonly val: bigint | null;
}

const UNINIT: Reg = { k: Kind.Uninit, off: null, own: false, region: 0, val: null };
const SCALAR: Reg = { k: Kind.Scalar, off: null, own: false, region: 0, val: null };
const MIXED: Reg = { k: Kind.Mixed, off: null, own: false, region: 0, val: null };
const SLOTS = STACK_SIZE / 8;
const OFF_LIMIT = 1 << 29;
/**
 * Work bound of the analysis, in instructions processed (each visit of an instruction
 * counts, revisits included), as the kernel bounds its verifier at 1M instructions.
 */
export const MAX_PROCESSED = 1_000_000;

function scalar(val: bigint | null): Reg {
  return val === null ? SCALAR : { k: Kind.Scalar, off: null, own: false, region: 0, val };
}

function ptr(k: Kind, off: number | null, own = false, region = 0): Reg {
  const o = off === null || Math.abs(off) > OFF_LIMIT ? null : off;
  return { k, off: o, own, region, val: null };
}

function isPtr(r: Reg): boolean {
  return r.k === Kind.Ctx || r.k === Kind.Stack || r.k === Kind.Mem || r.k === Kind.Data;
}

function sameReg(a: Reg, b: Reg): boolean {
  return a.k === b.k && a.off === b.off && a.own === b.own && a.region === b.region && a.val === b.val;
}

function joinReg(a: Reg, b: Reg): Reg {
  if (sameReg(a, b)) return a;
  if (a.k === Kind.Uninit || b.k === Kind.Uninit) return UNINIT;
  if (a.k !== b.k) return MIXED;
  if (a.k === Kind.Scalar) return SCALAR;
  if (a.k === Kind.Data && a.region !== b.region) return MIXED;
  if (a.k === Kind.Stack && a.own !== b.own) return ptr(Kind.Stack, null, false);
  return ptr(a.k, a.off === b.off ? a.off : null, a.own, a.region);
}

/**
 * The abstract state at a program point. Stack slots are copied on write: a state cloned at
 * a branch or a block entry shares its slots with the original until one of them stores to
 * the stack, so a visit costs the registers it copies, not the whole frame.
 */
interface State {
  regs: Reg[];
  slots: Reg[];
  /** The slots array may be shared with another state: copy before writing. */
  shared: boolean;
}

/** The slots of a frame where every slot holds an unknown scalar (never written to). */
const ALL_SCALAR: readonly Reg[] = Object.freeze(new Array<Reg>(SLOTS).fill(SCALAR));

function cloneState(s: State): State {
  s.shared = true;
  return { regs: s.regs.slice(), slots: s.slots, shared: true };
}

/** The state's slots, ready to be written. */
function ownSlots(s: State): Reg[] {
  if (s.shared) {
    s.slots = s.slots.slice();
    s.shared = false;
  }
  return s.slots;
}

/** Forgets every slot (an unknown write, or a callee given a pointer into the frame). */
function clobberSlots(s: State): void {
  s.slots = ALL_SCALAR as Reg[];
  s.shared = true;
}

/** Joins `b` into `a`; true when `a` changed. */
function joinInto(a: State, b: State): boolean {
  let changed = false;
  for (let i = 0; i < REG_COUNT; i++) {
    const j = joinReg(a.regs[i]!, b.regs[i]!);
    if (!sameReg(j, a.regs[i]!)) {
      a.regs[i] = j;
      changed = true;
    }
  }
  if (a.slots === b.slots) return changed;
  let slots: Reg[] | undefined;
  for (let i = 0; i < SLOTS; i++) {
    const old = a.slots[i]!;
    let j = joinReg(old, b.slots[i]!);
    if (j.k === Kind.Uninit) j = SCALAR;
    if (!sameReg(j, old)) {
      slots ??= ownSlots(a);
      slots[i] = j;
      changed = true;
    }
  }
  return changed;
}

/** A min-heap of block starts: the work list of the fixpoint. */
class BlockQueue {
  private readonly heap: number[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(v: number): void {
    const h = this.heap;
    let i = h.length;
    h.push(v);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]! <= v) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = v;
  }

  pop(): number {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && h[r]! < h[l]! ? r : l;
        if (h[c]! >= last) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

class Refusal {
  constructor(
    readonly pc: number,
    readonly reason: string,
  ) {}
}

function fail(pc: number, reason: string): never {
  throw new Refusal(pc, reason);
}

/** Checks the fields of one instruction; returns the reason it is invalid, or undefined. */
function structuralError(insn: Insn, next: Insn | undefined, mode: Mode): string | undefined {
  const { code, dst, src, off, imm } = insn;
  const cls = opClass(code);
  const op = code & 0xf0;
  if (dst > 10) return `invalid destination register r${dst}`;
  if (src > 10) return `invalid source register r${src}`;
  switch (cls) {
    case BPF_ALU:
    case BPF_ALU64: {
      if (op === 0xe0 || op === 0xf0) return `unknown ALU operation 0x${op.toString(16)}`;
      if (op === BPF_NEG) {
        if (code & BPF_X || src !== 0 || off !== 0 || imm !== 0) return 'reserved fields of neg must be zero';
        return undefined;
      }
      if (op === BPF_END) {
        if (cls === BPF_ALU64 && code & BPF_X) return 'unknown byte-swap encoding';
        if (src !== 0 || off !== 0) return 'reserved fields of a byte swap must be zero';
        if (imm !== 16 && imm !== 32 && imm !== 64) return `byte swap width ${imm} is not 16, 32 or 64`;
        return undefined;
      }
      if (code & BPF_X) {
        if (imm !== 0) return 'the immediate of a register operation must be zero';
      } else if (src !== 0) return 'the source register of an immediate operation must be zero';
      if (op === BPF_DIV || op === BPF_MOD) {
        if (off !== 0 && off !== 1) return `offset ${off} of a division must be 0 or 1`;
      } else if (op === BPF_MOV) {
        if (off !== 0) {
          const ok = code & BPF_X && (off === 8 || off === 16 || (off === 32 && cls === BPF_ALU64));
          if (!ok) return `invalid sign-extension width ${off} of mov`;
        }
      } else if (off !== 0) return 'the offset of an ALU operation must be zero';
      return undefined;
    }
    case BPF_JMP:
    case BPF_JMP32: {
      if (op === BPF_JA) {
        if (code & BPF_X || src !== 0 || dst !== 0) return 'reserved fields of goto must be zero';
        if (cls === BPF_JMP && imm !== 0) return 'the immediate of goto must be zero';
        if (cls === BPF_JMP32 && off !== 0) return 'the offset of gotol must be zero';
        return undefined;
      }
      if (op === BPF_CALL) {
        if (cls !== BPF_JMP) return 'call is not a 32-bit jump';
        if (code & BPF_X) return 'indirect calls (callx) are not supported';
        if (dst !== 0 || off !== 0) return 'reserved fields of call must be zero';
        if (src === BPF_PSEUDO_KFUNC_CALL) return 'calls to kernel functions (kfuncs) are not supported';
        if (src === 0) {
          if (!HELPERS.has(imm)) return `unknown helper function ${imm}`;
          if ((imm === 26 || imm === 68) && mode === 'raw') return `helper ${imm} needs a socket buffer context, which raw mode has not`;
          return undefined;
        }
        if (src !== BPF_PSEUDO_CALL) return `unknown call kind ${src}`;
        return undefined;
      }
      if (op === BPF_EXIT) {
        if (cls !== BPF_JMP || code & BPF_X || src !== 0 || dst !== 0 || off !== 0 || imm !== 0) return 'reserved fields of exit must be zero';
        return undefined;
      }
      if (op === 0xe0 || op === 0xf0) return `unknown jump operation 0x${op.toString(16)}`;
      if (code & BPF_X) {
        if (imm !== 0) return 'the immediate of a register comparison must be zero';
      } else if (src !== 0) return 'the source register of an immediate comparison must be zero';
      return undefined;
    }
    case BPF_LD: {
      if (isLddw(code)) {
        if (off !== 0) return 'the offset of lddw must be zero';
        if (next === undefined) return 'lddw is missing its second half';
        if (next.code !== 0 || next.dst !== 0 || next.src !== 0 || next.off !== 0) return 'invalid second half of lddw';
        if (src === BPF_PSEUDO_MAP_FD) return 'lddw of a map: maps are not supported';
        if (src !== 0 && src !== BPF_PSEUDO_MAP_VALUE) return `lddw source ${src} (maps, BTF ids, functions) is not supported`;
        return undefined;
      }
      const mode2 = code & 0xe0;
      if ((mode2 !== BPF_ABS && mode2 !== BPF_IND) || (code & 0x18) === BPF_DW) return `unknown load opcode 0x${code.toString(16)}`;
      if (dst !== 0 || off !== 0) return 'reserved fields of a packet load must be zero';
      if (mode2 === BPF_ABS && src !== 0) return 'the source register of an absolute packet load must be zero';
      return undefined;
    }
    case BPF_LDX: {
      const m = code & 0xe0;
      if (m !== BPF_MEM && !(m === BPF_MEMSX && (code & 0x18) !== BPF_DW)) return `unknown load opcode 0x${code.toString(16)}`;
      if (imm !== 0) return 'the immediate of a load must be zero';
      return undefined;
    }
    case BPF_ST: {
      if ((code & 0xe0) !== BPF_MEM) return `unknown store opcode 0x${code.toString(16)}`;
      if (src !== 0) return 'the source register of an immediate store must be zero';
      return undefined;
    }
    case BPF_STX: {
      const m = code & 0xe0;
      if (m === BPF_MEM) {
        if (imm !== 0) return 'the immediate of a store must be zero';
        return undefined;
      }
      if (m === BPF_ATOMIC) {
        const size = code & 0x18;
        if (size !== BPF_W && size !== BPF_DW) return 'atomic operations are 32 or 64 bits wide';
        const base = imm & ~BPF_FETCH;
        const known = imm === BPF_XCHG || imm === BPF_CMPXCHG || base === 0x00 || base === 0x40 || base === 0x50 || base === 0xa0;
        if (!known || (imm & ~0xff) !== 0) return `unknown atomic operation 0x${(imm >>> 0).toString(16)}`;
        return undefined;
      }
      return `unknown store opcode 0x${code.toString(16)}`;
    }
  }
  return `unknown opcode 0x${code.toString(16)}`;
}

/**
 * Checks of one instruction that, as in the kernel, apply only where a path reaches it
 * (code that known values rule out is not held against the program); returns the reason
 * it is refused, or undefined.
 */
function pathError(insn: Insn): string | undefined {
  const { code, dst, src, imm } = insn;
  const cls = opClass(code);
  const op = code & 0xf0;
  switch (cls) {
    case BPF_ALU:
    case BPF_ALU64:
      if (dst === FP) return 'the frame pointer r10 is read-only';
      if (code & BPF_X) return undefined;
      if ((op === BPF_DIV || op === BPF_MOD) && imm === 0) return 'division by an immediate zero';
      if (op === BPF_LSH || op === BPF_RSH || op === BPF_ARSH) {
        const width = cls === BPF_ALU64 ? 64 : 32;
        if (imm < 0 || imm >= width) return `shift by ${imm}, outside 0..${width - 1}`;
      }
      return undefined;
    case BPF_LD:
    case BPF_LDX:
      if (dst === FP && (cls === BPF_LDX || isLddw(code))) return 'the frame pointer r10 is read-only';
      return undefined;
    case BPF_STX:
      if ((code & 0xe0) === BPF_ATOMIC && imm & BPF_FETCH && src === FP) return 'the frame pointer r10 is read-only';
      return undefined;
  }
  return undefined;
}

/**
 * Verifies `prog` for `mode`; throws `KcmError` `EINVAL` naming the instruction, its
 * disassembly and the reason when it is refused.
 */
/**
 * Which sides of conditional jumps the analysis follows: `known` (the default) skips a side
 * that known values rule out, as the kernel does; `all` follows both; a set of
 * `"from>to"` steps follows only those (the differential tests replay the kernel's walk).
 */
export type BranchPolicy = 'known' | 'all' | ReadonlySet<string>;

export function verify(prog: LinkedProgram, mode: Mode, branches: BranchPolicy = 'known'): Analysis {
  try {
    return new Verifier(prog, mode, branches).run();
  } catch (err) {
    if (err instanceof Refusal) {
      const insn = prog.insns[err.pc];
      const text = insn === undefined ? '' : ` '${disassemble(insn, prog.insns[err.pc + 1])}'`;
      // Reasons may name sections of the object: escaped like every name.
      throw new KcmError('EINVAL', `bpf: verifier refused instruction ${err.pc}${text}: ${printable(err.reason)}`);
    }
    throw err;
  }
}

class Verifier {
  private readonly insns: readonly Insn[];
  private readonly n: number;
  private readonly second: Uint8Array;
  private readonly funcOf: Int32Array;
  private starts: number[] = [];
  private readonly access: (MemAccess | undefined)[];
  private readonly reachable: Uint8Array;
  private usesCb = false;
  private leaks = false;
  /** Instructions processed so far: the analysis's work, bounded by {@link MAX_PROCESSED}. */
  private processed = 0;
  private readonly leaders: Uint8Array;
  private readonly queued: Uint8Array;
  /** Per function: the deepest stack byte it touches below its r10. */
  private depth = new Int32Array(0);
  private callees: number[][] = [];
  private callSite = new Map<string, number>();
  private readonly entries = new Map<number, State>();

  constructor(
    private readonly prog: LinkedProgram,
    private readonly mode: Mode,
    private readonly branches: BranchPolicy = 'known',
  ) {
    this.insns = prog.insns;
    this.n = prog.insns.length;
    this.second = new Uint8Array(this.n);
    this.funcOf = new Int32Array(this.n);
    this.access = new Array<MemAccess | undefined>(this.n);
    this.reachable = new Uint8Array(this.n);
    this.leaders = new Uint8Array(this.n);
    this.queued = new Uint8Array(this.n);
  }

  run(): Analysis {
    const { insns, n } = this;
    if (n === 0) fail(0, 'the program is empty');
    if (n > MAX_INSNS) fail(0, `the program has ${n} instructions, more than ${MAX_INSNS}`);
    const targets = new Set<number>([0]);
    for (let pc = 0; pc < n; pc++) {
      const insn = insns[pc]!;
      const err = structuralError(insn, insns[pc + 1], this.mode);
      if (err !== undefined) fail(pc, err);
      if (isLddw(insn.code)) {
        this.second[pc + 1] = 1;
        pc++;
        continue;
      }
      if (insn.code === (BPF_JMP | BPF_CALL) && insn.src === BPF_PSEUDO_CALL) {
        const t = pc + insn.imm + 1;
        if (t < 0 || t >= n) fail(pc, `call target ${t} is outside the program`);
        targets.add(t);
      }
    }
    for (const t of targets) if (this.second[t]) fail(t - 1, 'a call targets the middle of lddw');
    this.starts = [...targets].sort((a, b) => a - b);
    for (let f = 0; f < this.starts.length; f++) {
      const end = f + 1 < this.starts.length ? this.starts[f + 1]! : n;
      for (let pc = this.starts[f]!; pc < end; pc++) this.funcOf[pc] = f;
    }
    // Jump targets stay inside their function and never land on lddw's second half.
    for (let pc = 0; pc < n; pc++) {
      if (this.second[pc]) continue;
      const t = this.jumpTarget(pc);
      if (t === undefined) continue;
      const f = this.funcOf[pc]!;
      if (t < this.starts[f]! || t >= this.endOf(f)) fail(pc, `jump target ${t} is outside the function [${this.starts[f]}, ${this.endOf(f)})`);
      if (this.second[t]) fail(pc, `jump target ${t} is the middle of lddw`);
    }
    this.refuseUnreachable();
    const order = this.callOrder();
    this.depth = new Int32Array(this.starts.length);
    const functions: FunctionInfo[] = new Array<FunctionInfo>(this.starts.length);
    const mainEntry = this.initialState();
    this.entries.set(0, mainEntry);
    let hasLoops = false;
    for (const f of order) {
      const entry = this.entries.get(f);
      if (entry === undefined) continue;
      const info = this.analyseFunction(f, entry);
      functions[f] = info;
      if (info.loopHeaders.size > 0) hasLoops = true;
    }
    this.refuseDeepStacks();
    const functionAt = new Map<number, number>();
    const live: FunctionInfo[] = [];
    for (let f = 0; f < functions.length; f++) {
      const info = functions[f];
      if (info === undefined) continue;
      functionAt.set(info.start, live.length);
      live.push(info);
    }
    return { mode: this.mode, functions: live, functionAt, access: this.access, reachable: this.reachable, hasLoops, usesCb: this.usesCb, processed: this.processed, leaksPointers: this.leaks };
  }

  /**
   * Refuses instructions that no path of the control-flow graph reaches, taking both sides
   * of every branch and entering every called function, as the kernel does before it
   * verifies anything: dead code is refused, not skipped.
   */
  private refuseUnreachable(): void {
    const { insns, n } = this;
    const seen = new Uint8Array(n);
    const stack = [0];
    seen[0] = 1;
    const push = (t: number): void => {
      if (t >= 0 && t < n && seen[t] === 0) {
        seen[t] = 1;
        stack.push(t);
      }
    };
    while (stack.length > 0) {
      const pc = stack.pop()!;
      const insn = insns[pc]!;
      if (isLddw(insn.code)) {
        push(pc + 2);
        continue;
      }
      const cls = opClass(insn.code);
      const op = insn.code & 0xf0;
      if (cls === BPF_JMP || cls === BPF_JMP32) {
        if (op === BPF_EXIT) continue;
        if (op === BPF_CALL) {
          if (insn.src === BPF_PSEUDO_CALL) push(pc + insn.imm + 1);
        } else {
          push(this.jumpTarget(pc)!);
          if (op === BPF_JA) continue;
        }
      }
      push(pc + 1);
    }
    for (let pc = 0; pc < n; pc++) if (seen[pc] === 0 && this.second[pc] === 0) fail(pc, 'the instruction is unreachable');
  }

  /**
   * Refuses call chains whose frames together exceed one 512-byte stack: each function takes
   * the deepest byte it touches below its r10, rounded up to 16 bytes (as the kernel counts
   * for JIT-compiled programs), and the frames of every chain of calls add up.
   */
  private refuseDeepStacks(): void {
    const count = this.starts.length;
    const below = new Int32Array(count).fill(-1);
    const next = new Int32Array(count).fill(-1);
    const frame = (f: number): number => (this.depth[f]! + 15) & ~15;
    // Post-order over the call graph (a DAG: recursion is refused): the most any chain from f uses.
    const visit = (f: number): number => {
      if (below[f]! >= 0) return below[f]!;
      let most = 0;
      for (const g of this.callees[f]!) {
        const v = visit(g);
        if (v > most) {
          most = v;
          next[f] = g;
        }
      }
      below[f] = frame(f) + most;
      return below[f]!;
    };
    const total = visit(0);
    if (total <= STACK_SIZE) return;
    // Report the first call of the deepest chain.
    const g = next[0]!;
    fail(this.callSite.get(`0:${g}`) ?? 0, `the frames of this chain of calls take ${total} bytes of stack together, more than ${STACK_SIZE}`);
  }

  /** Records that function `f` touches its frame `bytes` below r10 (unknown offsets: all of it). */
  private touchStack(pc: number, bytes: number): void {
    const f = this.funcOf[pc]!;
    if (bytes > this.depth[f]!) this.depth[f] = Math.min(bytes, STACK_SIZE);
  }

  private endOf(f: number): number {
    return f + 1 < this.starts.length ? this.starts[f + 1]! : this.n;
  }

  private jumpTarget(pc: number): number | undefined {
    const insn = this.insns[pc]!;
    const cls = opClass(insn.code);
    if (cls !== BPF_JMP && cls !== BPF_JMP32) return undefined;
    const op = insn.code & 0xf0;
    if (op === BPF_CALL || op === BPF_EXIT) return undefined;
    if (op === BPF_JA && cls === BPF_JMP32) return pc + insn.imm + 1;
    return pc + insn.off + 1;
  }

  /** Functions reachable by calls from the program, callers before callees; refuses recursion. */
  private callOrder(): number[] {
    const count = this.starts.length;
    const callees: number[][] = Array.from({ length: count }, () => []);
    const callSite: Map<string, number> = new Map();
    this.callees = callees;
    this.callSite = callSite;
    for (let pc = 0; pc < this.n; pc++) {
      const insn = this.insns[pc]!;
      if (this.second[pc] || insn.code !== (BPF_JMP | BPF_CALL) || insn.src !== BPF_PSEUDO_CALL) continue;
      const from = this.funcOf[pc]!;
      const to = this.funcOf[pc + insn.imm + 1]!;
      callees[from]!.push(to);
      callSite.set(`${from}:${to}`, pc);
    }
    // Depth-first search from the program: a call back into a function still on the path
    // is recursion, which the kernel refuses as an unbounded loop.
    const color = new Uint8Array(count);
    const post: number[] = [];
    const stack: [number, number][] = [[0, 0]];
    color[0] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const [f, i] = top;
      const list = callees[f]!;
      if (i < list.length) {
        top[1] = i + 1;
        const g = list[i]!;
        if (color[g] === 1) fail(callSite.get(`${f}:${g}`)!, 'recursive call');
        if (color[g] === 0) {
          color[g] = 1;
          stack.push([g, 0]);
        }
        continue;
      }
      color[f] = 2;
      post.push(f);
      stack.pop();
    }
    // Reverse post-order puts callers before callees; the longest call chain bounds the frames.
    const order = post.reverse();
    const depth = new Int32Array(count);
    depth[0] = 1;
    for (const f of order) {
      for (const g of callees[f]!) {
        if (depth[f]! + 1 > MAX_FRAMES) fail(callSite.get(`${f}:${g}`)!, `calls nest deeper than ${MAX_FRAMES} frames`);
        if (depth[g]! < depth[f]! + 1) depth[g] = depth[f]! + 1;
      }
    }
    return order;
  }

  private initialState(): State {
    const regs = new Array<Reg>(REG_COUNT).fill(UNINIT);
    if (this.mode === 'parser') regs[1] = ptr(Kind.Ctx, 0);
    else {
      regs[1] = ptr(Kind.Mem, 0);
      regs[2] = SCALAR;
    }
    regs[FP] = ptr(Kind.Stack, 0, true);
    return { regs, slots: ALL_SCALAR as Reg[], shared: true };
  }

  private analyseFunction(f: number, entry: State): FunctionInfo {
    const start = this.starts[f]!;
    const end = this.endOf(f);
    const inStates = new Map<number, State>();
    inStates.set(start, cloneState(entry));
    const leaders = this.leaders;
    leaders[start] = 1;
    for (let pc = start; pc < end; pc++) {
      if (this.second[pc]) continue;
      const t = this.jumpTarget(pc);
      if (t === undefined) {
        const insn = this.insns[pc]!;
        if (insn.code === (BPF_JMP | BPF_EXIT) && pc + 1 < end) leaders[pc + 1] = 1;
        continue;
      }
      leaders[t] = 1;
      if (pc + 1 < end) leaders[pc + 1] = 1;
    }
    const loopHeaders = new Set<number>();
    // Lowest block first: forward code is walked once per change of its entry state, and a
    // loop's body after its header, so changes travel a whole pass at a time.
    const work = new BlockQueue();
    const queued = this.queued;
    work.push(start);
    queued[start] = 1;
    while (work.size > 0) {
      const b = work.pop();
      queued[b] = 0;
      const st = cloneState(inStates.get(b)!);
      const succs = this.walkBlock(b, end, st, false);
      for (let i = 0; i < succs.length; i += 2) {
        const s = succs[i] as number;
        const state = succs[i + 1] as State;
        if (s <= b) loopHeaders.add(s);
        const prior = inStates.get(s);
        if (prior === undefined) inStates.set(s, state);
        else if (!joinInto(prior, state)) continue;
        if (queued[s] === 0) {
          queued[s] = 1;
          work.push(s);
        }
      }
    }
    // Final pass with the fixpoint states records what each access touches.
    const blocks = [...inStates.keys()].sort((a, b) => a - b);
    for (const b of blocks) this.walkBlock(b, end, cloneState(inStates.get(b)!), true);
    return { start, end, blocks, loopHeaders };
  }

  /** Runs the block at `b` over `st`; returns its successors and their states, flat. */
  private walkBlock(b: number, end: number, st: State, record: boolean): (number | State)[] {
    let pc = b;
    for (;;) {
      if (!record && ++this.processed > MAX_PROCESSED) {
        fail(pc, `the program is too complex to verify: more than ${MAX_PROCESSED} instructions processed`);
      }
      if (record) this.reachable[pc] = 1;
      const insn = this.insns[pc]!;
      const cls = opClass(insn.code);
      const op = insn.code & 0xf0;
      if (cls === BPF_JMP || cls === BPF_JMP32) {
        if (op === BPF_EXIT) {
          const r0 = this.use(st, pc, 0, 'r0 at exit');
          if (isPtr(r0) || r0.k === Kind.Mixed) this.leaks = true;
          return [];
        }
        if (op === BPF_CALL) {
          this.call(pc, insn, st, record);
        } else if (op === BPF_JA) {
          return [this.jumpTarget(pc)!, st];
        } else {
          const d = this.use(st, pc, insn.dst);
          const s = insn.code & BPF_X ? this.use(st, pc, insn.src) : scalar(cls === BPF_JMP ? immToU64(insn.imm) : BigInt(insn.imm >>> 0));
          const t = this.jumpTarget(pc)!;
          if (pc + 1 >= end) fail(pc, 'the program falls off the end of its function');
          if (isPtr(d) || d.k === Kind.Mixed || isPtr(s) || s.k === Kind.Mixed) this.leaks = true;
          const policy = this.branches;
          if (typeof policy !== 'string') {
            const out: (number | State)[] = [];
            if (policy.has(`${pc}>${t}`)) out.push(t, st);
            if (policy.has(`${pc}>${pc + 1}`)) out.push(pc + 1, out.length > 0 ? cloneState(st) : st);
            return out;
          }
          // Like the kernel, follow only the side that known values take: the other is dead.
          if (policy === 'known' && d.k === Kind.Scalar && s.k === Kind.Scalar && d.val !== null && s.val !== null) {
            return jumpTaken(op, d.val, s.val, cls === BPF_JMP) ? [t, st] : [pc + 1, st];
          }
          return [t, st, pc + 1, cloneState(st)];
        }
      } else {
        this.step(pc, insn, st, record);
      }
      if (record) {
        if (isLddw(insn.code)) this.reachable[pc + 1] = 1;
      }
      const next = isLddw(insn.code) ? pc + 2 : pc + 1;
      if (next >= end) fail(pc, 'the program falls off the end of its function');
      if (this.leaders[next] === 1) return [next, st];
      pc = next;
    }
  }

  private use(st: State, pc: number, r: number, what?: string): Reg {
    const reg = st.regs[r]!;
    if (reg.k === Kind.Uninit) fail(pc, `${what ?? `r${r}`} is read before it is written`);
    return reg;
  }

  private setAccess(pc: number, kind: Access, at: number, region: number, record: boolean): void {
    if (record) this.access[pc] = { kind, at, region };
  }

  private step(pc: number, insn: Insn, st: State, record: boolean): void {
    const why = pathError(insn);
    if (why !== undefined) fail(pc, why);
    const { code, dst, src, off, imm } = insn;
    const cls = opClass(code);
    const op = code & 0xf0;
    const regs = st.regs;
    switch (cls) {
      case BPF_ALU:
      case BPF_ALU64: {
        const wide = cls === BPF_ALU64;
        if (op === BPF_END) {
          const d = this.use(st, pc, dst);
          if (isPtr(d) || d.k === Kind.Mixed) this.leaks = true;
          const swap = wide || (code & BPF_X) !== 0;
          regs[dst] = scalar(d.k === Kind.Scalar && d.val !== null ? endian(d.val, imm, swap) : null);
          return;
        }
        const s: Reg = code & BPF_X ? this.use(st, pc, src) : scalar(wide ? immToU64(imm) : BigInt(imm >>> 0));
        if (op === BPF_MOV) {
          if (!(wide && off === 0) && (isPtr(s) || s.k === Kind.Mixed)) this.leaks = true;
          if (wide && off === 0) regs[dst] = s;
          else regs[dst] = scalar(s.k === Kind.Scalar && s.val !== null ? (wide ? alu64 : alu32)(op, 0n, s.val, off) : null);
          return;
        }
        const d = this.use(st, pc, dst);
        const dp = isPtr(d) || d.k === Kind.Mixed;
        const sp = isPtr(s) || s.k === Kind.Mixed;
        if (op === BPF_NEG && dp) this.leaks = true;
        if ((dp || sp) && op !== BPF_NEG) {
          // As the kernel: only 64-bit + and - move a pointer; pointer - pointer is a number.
          const r = dp ? dst : src;
          if (!wide) {
            // A privileged load may subtract in 32 bits: the result is a meaningless number.
            if (op !== BPF_SUB) fail(pc, `32-bit arithmetic on the pointer r${r}`);
            this.leaks = true;
            regs[dst] = SCALAR;
            return;
          }
          if (op === BPF_AND || op === BPF_OR || op === BPF_XOR) fail(pc, `bitwise operation on the pointer r${r}`);
          if (op !== BPF_ADD && op !== BPF_SUB) fail(pc, `arithmetic other than + and - on the pointer r${r}`);
          if (dp && sp) {
            if (op === BPF_ADD) fail(pc, 'pointer + pointer');
            this.leaks = true;
            regs[dst] = SCALAR;
            return;
          }
          if (sp && op === BPF_SUB) fail(pc, `scalar - pointer r${src}`);
          // The kernel refuses it too: JITs may not handle a frame pointer moved upwards.
          if (op === BPF_SUB && !sp && (d.k === Kind.Stack || d.k === Kind.Mixed)) fail(pc, `subtraction from the stack pointer r${dst} (add a negative number instead)`);
          if (d.k === Kind.Mixed || s.k === Kind.Mixed) {
            regs[dst] = MIXED;
            return;
          }
        }
        if (wide && (op === BPF_ADD || op === BPF_SUB)) {
          const sOff = s.k === Kind.Scalar && s.val !== null ? Number(BigInt.asIntN(64, s.val)) : null;
          const dOff = d.k === Kind.Scalar && d.val !== null ? Number(BigInt.asIntN(64, d.val)) : null;
          // As the kernel: a pointer moves by less than 2^29 at a time, known values included.
          const by = isPtr(d) ? sOff : isPtr(s) ? dOff : null;
          if (by !== null && Math.abs(by) >= OFF_LIMIT) fail(pc, `moving a pointer by ${by} is not allowed (at most ${OFF_LIMIT - 1} either way)`);
          if (isPtr(d) && s.k === Kind.Scalar) {
            const o = d.off !== null && sOff !== null ? (op === BPF_ADD ? d.off + sOff : d.off - sOff) : null;
            regs[dst] = ptr(d.k, o, d.own, d.region);
            return;
          }
          if (op === BPF_ADD && isPtr(s) && d.k === Kind.Scalar) {
            regs[dst] = ptr(s.k, s.off !== null && dOff !== null ? s.off + dOff : null, s.own, s.region);
            return;
          }
        }
        if (d.k === Kind.Scalar && s.k === Kind.Scalar && d.val !== null && s.val !== null) {
          regs[dst] = scalar(wide ? alu64(op, d.val, s.val, off) : alu32(op, d.val, s.val, off));
        } else regs[dst] = SCALAR;
        return;
      }
      case BPF_LD: {
        if (isLddw(code)) {
          const hi = this.insns[pc + 1]!.imm;
          if (insn.src === BPF_PSEUDO_MAP_VALUE) {
            const region = this.prog.regions[imm];
            if (region === undefined) fail(pc, `lddw refers to map value ${imm}: maps are not supported`);
            if (hi < 0 || hi > region.bytes.length) fail(pc, `offset ${hi} is outside ${region.name}`);
            regs[dst] = ptr(Kind.Data, hi, false, imm);
          } else {
            regs[dst] = scalar((BigInt(hi >>> 0) << 32n) | BigInt(imm >>> 0));
          }
          return;
        }
        // LD_ABS / LD_IND: the packet is the context's data [F-3a].
        if (this.mode === 'parser') {
          const r6 = regs[6]!;
          if (r6.k !== Kind.Ctx || r6.off !== 0) fail(pc, 'packet loads need the context in r6');
        }
        if ((code & 0xe0) === BPF_IND) {
          const s = this.use(st, pc, src);
          // A privileged load may use a pointer's value as the offset: a meaningless number.
          if (s.k !== Kind.Scalar) this.leaks = true;
        }
        regs[0] = SCALAR;
        for (let r = 1; r <= 5; r++) regs[r] = UNINIT;
        return;
      }
      case BPF_LDX: {
        const size = sizeBytes(code);
        const sx = (code & 0xe0) === BPF_MEMSX;
        const loaded = this.memory(pc, st, src, off, size, false, record, sx);
        regs[dst] = loaded;
        return;
      }
      case BPF_ST: {
        this.memory(pc, st, dst, off, sizeBytes(code), true, record, false, scalar(immToU64(imm)));
        return;
      }
      case BPF_STX: {
        const value = this.use(st, pc, src);
        if ((code & 0xe0) === BPF_MEM) {
          this.memory(pc, st, dst, off, sizeBytes(code), true, record, false, value);
          return;
        }
        // Atomic read-modify-write.
        if (imm === BPF_CMPXCHG) this.use(st, pc, 0, 'r0 (the cmpxchg comparand)');
        const base = regs[dst]!;
        if (base.k === Kind.Ctx) fail(pc, 'atomic operation on the context');
        this.memory(pc, st, dst, off, sizeBytes(code), true, record, false, SCALAR);
        if (imm === BPF_CMPXCHG) regs[0] = SCALAR;
        else if (imm & BPF_FETCH) regs[src] = SCALAR;
        return;
      }
    }
    fail(pc, `unknown opcode 0x${code.toString(16)}`);
  }

  /**
   * Checks a load (`write` false; returns the loaded type) or store (`value` = what is stored)
   * of `size` bytes at `r{base} + off`, and records what it touches.
   */
  private memory(pc: number, st: State, base: number, off: number, size: number, write: boolean, record: boolean, sx: boolean, value?: Reg): Reg {
    const p = this.use(st, pc, base);
    if (value !== undefined && (isPtr(value) || value.k === Kind.Mixed)) {
      // As the kernel: a pointer goes to the stack whole (an 8-byte spill) or not at all.
      if (p.k === Kind.Stack && size !== 8) fail(pc, `a pointer is spilled to the stack with a ${size}-byte store`);
      const fullSlot = p.k === Kind.Stack && p.own && p.off !== null && (p.off + off) % 8 === 0;
      if (!fullSlot) this.leaks = true;
    }
    switch (p.k) {
      case Kind.Ctx: {
        if (this.mode !== 'parser') fail(pc, 'no context in raw mode');
        if (p.off !== 0) fail(pc, `r${base} is a modified context pointer; context fields need the unmodified pointer`);
        const field = off;
        if (field >= CTX_CB && field + size <= CTX_CB + CTX_CB_SIZE && field % size === 0) {
          if (sx) fail(pc, 'sign-extending loads from the context are not allowed');
          this.usesCb = true;
          this.setAccess(pc, Access.CtxCb, field - CTX_CB, 0, record);
          return SCALAR;
        }
        if (write) fail(pc, `write to context offset ${field}: only skb->cb[0..4] is writable`);
        if (field < CTX_DATA_END + 4 && field + size > CTX_DATA) fail(pc, 'direct packet access (skb->data, skb->data_end) is not allowed for socket filters [F-3e]');
        if (sx) fail(pc, 'sign-extending loads from the context are not allowed');
        if (size <= 4 && field >= CTX_LEN && field + size <= CTX_LEN + 4 && field % size === 0) {
          this.setAccess(pc, Access.CtxLen, field, 0, record);
          return SCALAR;
        }
        if (size <= 4 && field >= 0 && field + size <= CTX_READABLE_END && field % size === 0) {
          this.setAccess(pc, Access.CtxZero, field, 0, record);
          return scalar(0n);
        }
        return fail(pc, `invalid context access at offset ${field}, ${size} bytes`);
      }
      case Kind.Stack: {
        if (p.own && p.off !== null) {
          const at = p.off + off;
          if (at < -STACK_SIZE || at + size > 0) fail(pc, `stack access at r10${at < 0 ? '' : '+'}${at} of ${size} bytes is outside the ${STACK_SIZE}-byte frame`);
          this.setAccess(pc, Access.StackStatic, at, 0, record);
          if (record) this.touchStack(pc, -at);
          const slot = (at + STACK_SIZE) >> 3;
          if (write) {
            const slots = ownSlots(st);
            if (size === 8 && at % 8 === 0) slots[slot] = value ?? SCALAR;
            else {
              const last = (at + size - 1 + STACK_SIZE) >> 3;
              for (let s = slot; s <= last; s++) slots[s] = SCALAR;
            }
            return SCALAR;
          }
          if (size === 8 && at % 8 === 0 && !sx) return st.slots[slot]!;
          const held = st.slots[slot]!;
          // As the kernel: a spilled pointer is read back whole or not at all.
          if (isPtr(held) || held.k === Kind.Mixed) fail(pc, `a pointer spilled to the stack is read back with a ${size}-byte${sx ? ' sign-extending' : ''} load`);
          return SCALAR;
        }
        if (p.own) {
          this.setAccess(pc, Access.StackOwnChecked, 0, 0, record);
          if (record) this.touchStack(pc, STACK_SIZE);
          if (write) clobberSlots(st);
        } else this.setAccess(pc, Access.StackCallerChecked, 0, 0, record);
        return SCALAR;
      }
      case Kind.Mem:
        this.setAccess(pc, Access.MemChecked, 0, 0, record);
        return SCALAR;
      case Kind.Data: {
        const region = this.prog.regions[p.region]!;
        if (write && !region.writable) fail(pc, `write to read-only section ${region.name}`);
        if (p.off !== null) {
          const at = p.off + off;
          if (at < 0 || at + size > region.bytes.length) fail(pc, `access at offset ${at} of ${size} bytes is outside ${region.name} (${region.bytes.length} bytes)`);
          this.setAccess(pc, Access.DataStatic, at, p.region, record);
        } else this.setAccess(pc, Access.DataChecked, 0, p.region, record);
        return SCALAR;
      }
      case Kind.Mixed:
        return fail(pc, `r${base} holds different kinds of pointer on different paths`);
      default:
        return fail(pc, `r${base} is not a pointer: memory is reachable only through the context, the stack, global data or the raw-mode memory block`);
    }
  }

  /** A helper's pointer argument in `r{r}`: records its region for the run-time copy. */
  private memoryArg(pc: number, st: State, r: number, write: boolean, record: boolean): void {
    const p = this.use(st, pc, r);
    if (p.k === Kind.Stack) {
      this.setAccess(pc, p.own ? Access.StackOwnChecked : Access.StackCallerChecked, 0, 0, record);
      if (record && p.own) this.touchStack(pc, p.off === null ? STACK_SIZE : -p.off);
      if (write && p.own) {
        const len = st.regs[4]!;
        if (p.off !== null && len.k === Kind.Scalar && len.val !== null) {
          const n = Number(len.val > 1024n ? 1024n : len.val);
          if (p.off < -STACK_SIZE || p.off + n > 0) fail(pc, `helper writes ${n} bytes at r10${p.off} outside the ${STACK_SIZE}-byte frame`);
          const slots = ownSlots(st);
          for (let at = p.off; at < p.off + n; at += 1) slots[(at + STACK_SIZE) >> 3] = SCALAR;
        } else clobberSlots(st);
      }
      return;
    }
    if (p.k === Kind.Mem) return this.setAccess(pc, Access.MemChecked, 0, 0, record);
    if (p.k === Kind.Data) {
      const region = this.prog.regions[p.region]!;
      if (write && !region.writable) fail(pc, `helper writes to read-only section ${region.name}`);
      return this.setAccess(pc, Access.DataChecked, 0, p.region, record);
    }
    fail(pc, `r${r} must point to the stack or global data`);
  }

  private call(pc: number, insn: Insn, st: State, record: boolean): void {
    const regs = st.regs;
    if (insn.src === BPF_PSEUDO_CALL) {
      const target = pc + insn.imm + 1;
      const callee = this.funcOf[target]!;
      const args = new Array<Reg>(REG_COUNT).fill(UNINIT);
      let passesStack = false;
      for (let r = 1; r <= 5; r++) {
        const a = regs[r]!;
        if (a.k === Kind.Stack) {
          passesStack = true;
          args[r] = ptr(Kind.Stack, null, false);
        } else args[r] = a;
      }
      args[FP] = ptr(Kind.Stack, 0, true);
      const entry: State = { regs: args, slots: ALL_SCALAR as Reg[], shared: true };
      const prior = this.entries.get(callee);
      if (prior === undefined) this.entries.set(callee, entry);
      else joinInto(prior, entry);
      regs[0] = SCALAR;
      for (let r = 1; r <= 5; r++) regs[r] = UNINIT;
      if (passesStack) clobberSlots(st);
      return;
    }
    switch (insn.imm) {
      case 26:
      case 68: {
        const ctx = this.use(st, pc, 1);
        if (ctx.k !== Kind.Ctx || ctx.off !== 0) fail(pc, 'r1 of bpf_skb_load_bytes must be the context');
        if (this.use(st, pc, 2).k !== Kind.Scalar) fail(pc, 'r2 (offset) must be a number');
        if (this.use(st, pc, 4).k !== Kind.Scalar) fail(pc, 'r4 (length) must be a number');
        if (insn.imm === 68) this.use(st, pc, 5);
        this.memoryArg(pc, st, 3, true, record);
        break;
      }
      case 6:
        this.memoryArg(pc, st, 1, false, record);
        this.use(st, pc, 2);
        break;
      default:
        break;
    }
    regs[0] = SCALAR;
    for (let r = 1; r <= 5; r++) regs[r] = UNINIT;
  }
}

