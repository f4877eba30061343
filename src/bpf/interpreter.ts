/**
 * A straightforward interpreter of verified programs on 64-bit BigInt registers. It is the
 * oracle the compiled code is tested against, serves `kcm bpf run --interpret`, and runs
 * `loadBpf` parsers where code generation is disallowed, so it must give exactly what the
 * compiled code gives and never throw. Like the compiled code, it takes the region of every
 * memory access from what the verifier proved (not from the address), checks the same
 * bounds the same way, and charges the same budget at the same points.
 */
import type { LinkedProgram } from './linker.js';
import {
  BPF_ABS,
  BPF_ALU,
  BPF_ALU64,
  BPF_CALL,
  BPF_CMPXCHG,
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
  BPF_MOV,
  BPF_PSEUDO_CALL,
  BPF_PSEUDO_MAP_VALUE,
  BPF_ST,
  BPF_STX,
  BPF_X,
  BPF_XCHG,
  FP,
  isLddw,
  opClass,
  sizeBytes,
  type Insn,
} from './opcodes.js';
import {
  CTX_BASE,
  CTX_CB_SIZE,
  DATA_BASE,
  DATA_STRIDE,
  MEM_BASE,
  RET_EFAULT,
  RET_ELOOP,
  STACK_BASE,
  STACK_SIZE,
  MAX_FRAMES,
  ktimeNs,
  prandomU32,
  tracePrintk,
} from './runtime.js';
import { MASK32, MASK64, alu32, alu64, endian, immToU64, jumpTaken } from './semantics.js';
import { Access, type Analysis, type MemAccess } from './verifier.js';
import { RUN_BUDGET, blockCosts, loadBytesCost, printkCost, stackBytesUsed } from './budget.js';

/** How a run ended. */
export type RunStatus =
  /** `exit` from the program. */
  | 'exit'
  /** A packet load past the data: the program ends returning 0 [F-3b]. */
  | 'abort'
  /** The instruction budget ran out. */
  | 'loop'
  /** A memory access outside its region (only possible where the verifier left a run-time check). */
  | 'fault';

export interface RunResult {
  readonly status: RunStatus;
  /** r0 as an unsigned 64-bit value (0 unless `status` is `exit`). */
  readonly r0: bigint;
  /** Instructions executed. */
  readonly steps: number;
  /** The instruction that faulted or ran out of budget. */
  readonly pc: number;
}

class Fault {
  constructor(readonly pc: number) {}
}

/** A helper's charge ran the budget out. */
class BudgetExhausted {
  constructor(readonly pc: number) {}
}

/** The low 32 bits of a register read as a signed int32, as the compiled code holds them. */
function lowHalf(v: bigint): number {
  return Number(BigInt.asIntN(32, v));
}

interface Frame {
  readonly ret: number;
  readonly saved: bigint[];
  readonly fp: bigint;
}

/** Interprets one verified program; one instance may run many times (not re-entrantly). */
export class Interpreter {
  private readonly insns: readonly Insn[];
  private readonly stack = new Uint8Array(STACK_SIZE * MAX_FRAMES);
  private readonly cb = new Uint8Array(CTX_CB_SIZE);
  private readonly data: Uint8Array[];
  private packet: Uint8Array = new Uint8Array(0);
  private mem: Uint8Array | undefined;
  /** The stack index of the running function's r10. */
  private fi = 0;
  private budget = 0;
  private readonly budgeted: boolean;
  private readonly atBlock: Int32Array;
  private readonly stackBytes: number;

  constructor(
    prog: LinkedProgram,
    private readonly analysis: Analysis,
  ) {
    this.insns = prog.insns;
    this.data = prog.regions.map((r) => r.bytes.slice());
    const costs = blockCosts(prog, analysis);
    this.budgeted = costs.budgeted;
    this.atBlock = costs.atBlock;
    this.stackBytes = stackBytesUsed(analysis);
  }

  /** Runs as a KCM parser on `data` and returns what the parser returns [P-3, F-4]. */
  runParser(data: Uint8Array): number {
    const res = this.run(data, undefined);
    switch (res.status) {
      case 'exit':
        return Number(BigInt.asIntN(32, res.r0));
      case 'abort':
        return 0;
      case 'loop':
        return RET_ELOOP;
      default:
        return RET_EFAULT;
    }
  }

  /** Runs in raw mode: r1 points to `mem`, r2 is its length, packet loads read `mem` too. */
  runRaw(mem: Uint8Array): RunResult {
    return this.run(mem, mem);
  }

  private run(packet: Uint8Array, mem: Uint8Array | undefined): RunResult {
    try {
      return this.execute(packet, mem);
    } catch (err) {
      // Never reached for a verified program; a parser must not throw into the stream
      // parser, so a defect here ends the run as a fault, as a failed check would.
      if (err instanceof BudgetExhausted) return { status: 'loop', r0: 0n, steps: 0, pc: err.pc };
      return { status: 'fault', r0: 0n, steps: 0, pc: err instanceof Fault ? err.pc : -1 };
    }
  }

  private execute(packet: Uint8Array, mem: Uint8Array | undefined): RunResult {
    this.packet = packet;
    this.mem = mem;
    this.cb.fill(0);
    // [F-7] as the compiled code: cb and the stack start zeroed on every run.
    this.stack.fill(0, 0, this.stackBytes);
    this.budget = RUN_BUDGET;
    const budgeted = this.budgeted;
    const atBlock = this.atBlock;
    const r: bigint[] = new Array<bigint>(11).fill(0n);
    if (mem === undefined) r[1] = BigInt(CTX_BASE);
    else {
      r[1] = BigInt(MEM_BASE);
      r[2] = BigInt(mem.length);
    }
    r[FP] = BigInt(STACK_BASE + STACK_SIZE);
    this.fi = STACK_SIZE;
    const frames: Frame[] = [];
    const insns = this.insns;
    let steps = 0;
    let pc = 0;
    try {
      for (;;) {
        steps++;
        if (budgeted && atBlock[pc] !== 0 && (this.budget -= atBlock[pc]!) < 0) return { status: 'loop', r0: 0n, steps, pc };
        const insn = insns[pc]!;
        const { code, dst, src, off, imm } = insn;
        const cls = opClass(code);
        const op = code & 0xf0;
        switch (cls) {
          case BPF_ALU64:
          case BPF_ALU: {
            const wide = cls === BPF_ALU64;
            if (op === BPF_END) {
              r[dst] = endian(r[dst]!, imm, wide || (code & BPF_X) !== 0);
              break;
            }
            const s = code & BPF_X ? r[src]! : wide ? immToU64(imm) : BigInt(imm >>> 0);
            const d = op === BPF_MOV ? 0n : r[dst]!;
            r[dst] = wide ? alu64(op, d, s, off) : alu32(op, d, s, off);
            break;
          }
          case BPF_JMP:
          case BPF_JMP32: {
            if (op === BPF_JA) {
              pc += cls === BPF_JMP ? off : imm;
              break;
            }
            if (op === BPF_EXIT) {
              const frame = frames.pop();
              if (frame === undefined) return { status: 'exit', r0: r[0]!, steps, pc };
              for (let i = 0; i < 4; i++) r[6 + i] = frame.saved[i]!;
              r[FP] = frame.fp;
              this.fi = Number(frame.fp) - STACK_BASE;
              pc = frame.ret;
              continue;
            }
            if (op === BPF_CALL) {
              if (src === BPF_PSEUDO_CALL) {
                frames.push({ ret: pc + 1, saved: r.slice(6, 10), fp: r[FP]! });
                r[FP] = r[FP]! + BigInt(STACK_SIZE);
                this.fi += STACK_SIZE;
                pc = pc + imm + 1;
                continue;
              }
              r[0] = this.helper(pc, imm, r);
              for (let i = 1; i <= 5; i++) r[i] = 0n;
              break;
            }
            const s = code & BPF_X ? r[src]! : cls === BPF_JMP ? immToU64(imm) : BigInt(imm >>> 0);
            if (jumpTaken(op, r[dst]!, s, cls === BPF_JMP)) pc += off;
            break;
          }
          case BPF_LD: {
            if (isLddw(code)) {
              const hi = insns[pc + 1]!.imm;
              if (src === BPF_PSEUDO_MAP_VALUE) r[dst] = BigInt(DATA_BASE + imm * DATA_STRIDE + hi);
              else r[dst] = (BigInt(hi >>> 0) << 32n) | BigInt(imm >>> 0);
              pc += 2;
              continue;
            }
            const size = sizeBytes(code);
            let at = imm | 0;
            if ((code & 0xe0) === BPF_IND) at = (Number(r[src]! & MASK32) + imm) | 0;
            else if ((code & 0xe0) !== BPF_ABS) throw new Fault(pc);
            if (at < 0 || at + size > this.packet.length) return { status: 'abort', r0: 0n, steps, pc };
            let v = 0n;
            for (let i = 0; i < size; i++) v = (v << 8n) | BigInt(this.packet[at + i]!);
            r[0] = v;
            for (let i = 1; i <= 5; i++) r[i] = 0n;
            break;
          }
          case BPF_LDX: {
            const size = sizeBytes(code);
            let v = this.load(pc, r[src]!, off, size);
            if ((code & 0xe0) === BPF_MEMSX) v = BigInt.asUintN(64, BigInt.asIntN(size * 8, v));
            r[dst] = v;
            break;
          }
          case BPF_ST:
            this.store(pc, r[dst]!, off, sizeBytes(code), immToU64(imm));
            break;
          case BPF_STX: {
            const size = sizeBytes(code);
            const base = r[dst]!;
            if ((code & 0xe0) === BPF_MEM) {
              this.store(pc, base, off, size, r[src]!);
              break;
            }
            const mask = size === 8 ? MASK64 : MASK32;
            const old = this.load(pc, base, off, size);
            const val = r[src]! & mask;
            if (imm === BPF_CMPXCHG) {
              if (old === (r[0]! & mask)) this.store(pc, base, off, size, val);
              r[0] = old;
              break;
            }
            if (imm === BPF_XCHG) {
              this.store(pc, base, off, size, val);
              r[src] = old;
              break;
            }
            const op2 = imm & ~BPF_FETCH;
            const next = (size === 8 ? alu64 : alu32)(op2, old, val, 0);
            this.store(pc, base, off, size, next);
            if (imm & BPF_FETCH) r[src] = old;
            break;
          }
          default:
            throw new Fault(pc);
        }
        pc++;
      }
    } catch (err) {
      if (err instanceof Fault) return { status: 'fault', r0: 0n, steps, pc: err.pc };
      if (err instanceof BudgetExhausted) return { status: 'loop', r0: 0n, steps, pc: err.pc };
      throw err;
    }
  }

  private accessOf(pc: number): MemAccess {
    const a = this.analysis.access[pc];
    if (a === undefined) throw new Fault(pc);
    return a;
  }

  /**
   * The bytes and index of an access of `size` bytes at `reg + off`, found as the compiled
   * code finds it: the region the verifier proved, a static index where it proved the
   * offset, else the register's low half (as a signed int32) against the region's bounds,
   * with a nonzero high half a fault.
   */
  private locate(pc: number, a: MemAccess, reg: bigint, off: number, size: number): [Uint8Array, number] {
    if (a.kind === Access.StackStatic) return [this.stack, this.fi + a.at];
    if (a.kind === Access.DataStatic) return [this.data[a.region]!, a.at];
    return this.locateChecked(pc, a, reg, off, size);
  }

  /** The region a checked access proved, with the bounds check the compiled code makes. */
  private locateChecked(pc: number, a: MemAccess, reg: bigint, off: number, size: number): [Uint8Array, number] {
    let base: number;
    let lo: number;
    let hi: number;
    let bytes: Uint8Array;
    switch (a.kind) {
      case Access.StackOwnChecked:
        [base, lo, hi, bytes] = [STACK_BASE, this.fi - STACK_SIZE, this.fi, this.stack];
        break;
      case Access.StackCallerChecked:
        [base, lo, hi, bytes] = [STACK_BASE, 0, this.fi - STACK_SIZE, this.stack];
        break;
      case Access.MemChecked:
        if (this.mem === undefined) throw new Fault(pc);
        [base, lo, hi, bytes] = [MEM_BASE, 0, this.mem.length, this.mem];
        break;
      case Access.DataChecked:
        bytes = this.data[a.region]!;
        [base, lo, hi] = [DATA_BASE + a.region * DATA_STRIDE, 0, bytes.length];
        break;
      default:
        throw new Fault(pc);
    }
    const t = lowHalf(reg) - base + off;
    if (reg >> 32n !== 0n || t < lo || t > hi - size) throw new Fault(pc);
    return [bytes, t];
  }

  private load(pc: number, reg: bigint, off: number, size: number): bigint {
    const a = this.accessOf(pc);
    switch (a.kind) {
      case Access.CtxLen:
        return BigInt((this.packet.length >>> (a.at * 8)) & (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff)) & MASK32;
      case Access.CtxZero:
        return 0n;
      case Access.CtxCb:
        return readLe(this.cb, a.at, size);
    }
    const [bytes, i] = this.locate(pc, a, reg, off, size);
    return readLe(bytes, i, size);
  }

  private store(pc: number, reg: bigint, off: number, size: number, value: bigint): void {
    const a = this.accessOf(pc);
    if (a.kind === Access.CtxCb) return writeLe(this.cb, a.at, size, value);
    const [bytes, i] = this.locate(pc, a, reg, off, size);
    writeLe(bytes, i, size, value);
  }

  /** A helper's memory argument `ptr` of `len` bytes, checked as the compiled code checks it. */
  private helperMemory(pc: number, ptr: bigint, len: number): [Uint8Array, number] {
    return this.locateChecked(pc, this.accessOf(pc), ptr, 0, len);
  }

  private charge(pc: number, units: number): void {
    if ((this.budget -= units) < 0) throw new BudgetExhausted(pc);
  }

  private helper(pc: number, id: number, r: bigint[]): bigint {
    switch (id) {
      case 5:
        return ktimeNs() & MASK64;
      case 7:
        return BigInt(prandomU32());
      case 8:
        return 0n;
      case 6: {
        const size = Number(r[2]! & MASK32);
        const [bytes, i] = this.helperMemory(pc, r[1]!, size);
        this.charge(pc, printkCost(size));
        return BigInt.asUintN(64, BigInt(tracePrintk(bytes.subarray(i, i + size), [r[3]!, r[4]!, r[5]!])));
      }
      case 26:
      case 68: {
        const offset = Number(r[2]! & MASK32);
        const len = Number(r[4]! & MASK32);
        const [bytes, i] = this.helperMemory(pc, r[3]!, len);
        this.charge(pc, loadBytesCost(len));
        if (offset > 0x7fffffff || offset + len > this.packet.length) {
          bytes.fill(0, i, i + len);
          return BigInt.asUintN(64, -14n);
        }
        bytes.set(this.packet.subarray(offset, offset + len), i);
        return 0n;
      }
      default:
        throw new Fault(pc);
    }
  }

  /** The analysis this interpreter runs under. */
  get verified(): Analysis {
    return this.analysis;
  }
}

function readLe(bytes: Uint8Array, at: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]!);
  return v;
}

function writeLe(bytes: Uint8Array, at: number, size: number, value: bigint): void {
  let v = value;
  for (let i = 0; i < size; i++) {
    bytes[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}
