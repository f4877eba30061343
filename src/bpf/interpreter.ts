/**
 * A straightforward interpreter of verified programs on 64-bit BigInt registers. It is the
 * oracle the compiled code is tested against, and serves `kcm bpf` for debugging. It finds
 * the region of every memory access from the address itself (not from the verifier's
 * notes), so differential tests also check what the verifier proved.
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
  CTX_CB,
  CTX_CB_SIZE,
  CTX_LEN,
  DATA_BASE,
  DATA_STRIDE,
  INSN_BUDGET,
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
import type { Analysis } from './verifier.js';

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
  private fpLimit = 0;

  constructor(
    private readonly prog: LinkedProgram,
    private readonly analysis: Analysis,
  ) {
    this.insns = prog.insns;
    this.data = prog.regions.map((r) => r.bytes.slice());
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
    this.packet = packet;
    this.mem = mem;
    this.cb.fill(0);
    const r: bigint[] = new Array<bigint>(11).fill(0n);
    if (mem === undefined) r[1] = BigInt(CTX_BASE);
    else {
      r[1] = BigInt(MEM_BASE);
      r[2] = BigInt(mem.length);
    }
    r[FP] = BigInt(STACK_BASE + STACK_SIZE);
    const frames: Frame[] = [];
    const insns = this.insns;
    let steps = 0;
    let pc = 0;
    try {
      for (;;) {
        if (++steps > INSN_BUDGET) return { status: 'loop', r0: 0n, steps, pc };
        this.fpLimit = Number(r[FP]!) - STACK_BASE;
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
              pc = frame.ret;
              continue;
            }
            if (op === BPF_CALL) {
              if (src === BPF_PSEUDO_CALL) {
                frames.push({ ret: pc + 1, saved: r.slice(6, 10), fp: r[FP]! });
                r[FP] = r[FP]! + BigInt(STACK_SIZE);
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
            let v = this.load(pc, (r[src]! + immToU64(off)) & MASK64, size);
            if ((code & 0xe0) === BPF_MEMSX) v = BigInt.asUintN(64, BigInt.asIntN(size * 8, v));
            r[dst] = v;
            break;
          }
          case BPF_ST:
            this.store(pc, (r[dst]! + immToU64(off)) & MASK64, sizeBytes(code), immToU64(imm));
            break;
          case BPF_STX: {
            const size = sizeBytes(code);
            const addr = (r[dst]! + immToU64(off)) & MASK64;
            if ((code & 0xe0) === BPF_MEM) {
              this.store(pc, addr, size, r[src]!);
              break;
            }
            const mask = size === 8 ? MASK64 : MASK32;
            const old = this.load(pc, addr, size);
            const val = r[src]! & mask;
            if (imm === BPF_CMPXCHG) {
              if (old === (r[0]! & mask)) this.store(pc, addr, size, val);
              r[0] = old;
              break;
            }
            if (imm === BPF_XCHG) {
              this.store(pc, addr, size, val);
              r[src] = old;
              break;
            }
            const base = imm & ~BPF_FETCH;
            const next = (size === 8 ? alu64 : alu32)(base, old, val, 0);
            this.store(pc, addr, size, next);
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
      throw err;
    }
  }

  /** The bytes and index an address of `size` bytes falls in, or a fault. */
  private locate(pc: number, addr: bigint, size: number, write: boolean): [Uint8Array, number] {
    if (addr > 0xffffffffn) throw new Fault(pc);
    const a = Number(addr);
    if (a >= STACK_BASE && a < STACK_BASE + this.stack.length) {
      const i = a - STACK_BASE;
      if (i + size > this.fpLimit) throw new Fault(pc);
      return [this.stack, i];
    }
    if (this.mem !== undefined && a >= MEM_BASE) {
      const i = a - MEM_BASE;
      if (i + size > this.mem.length) throw new Fault(pc);
      return [this.mem, i];
    }
    if (a >= DATA_BASE && a < DATA_BASE + DATA_STRIDE * this.data.length) {
      const n = Math.floor((a - DATA_BASE) / DATA_STRIDE);
      const i = a - DATA_BASE - n * DATA_STRIDE;
      const bytes = this.data[n]!;
      if (i + size > bytes.length || (write && !this.prog.regions[n]!.writable)) throw new Fault(pc);
      return [bytes, i];
    }
    throw new Fault(pc);
  }

  private load(pc: number, addr: bigint, size: number): bigint {
    if (this.mem === undefined && addr >= BigInt(CTX_BASE) && addr < BigInt(CTX_BASE + 256)) {
      const field = Number(addr) - CTX_BASE;
      if (field >= CTX_CB && field < CTX_CB + CTX_CB_SIZE) return readLe(this.cb, field - CTX_CB, size);
      if (field >= CTX_LEN && field < CTX_LEN + 4) {
        const len = BigInt(this.packet.length);
        return (len >> BigInt(8 * field)) & ((1n << BigInt(8 * size)) - 1n);
      }
      return 0n;
    }
    const [bytes, i] = this.locate(pc, addr, size, false);
    return readLe(bytes, i, size);
  }

  private store(pc: number, addr: bigint, size: number, value: bigint): void {
    if (this.mem === undefined && addr >= BigInt(CTX_BASE) && addr < BigInt(CTX_BASE + 256)) {
      const field = Number(addr) - CTX_BASE;
      if (field < CTX_CB || field + size > CTX_CB + CTX_CB_SIZE) throw new Fault(pc);
      writeLe(this.cb, field - CTX_CB, size, value);
      return;
    }
    const [bytes, i] = this.locate(pc, addr, size, true);
    writeLe(bytes, i, size, value);
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
        const [bytes, i] = this.locate(pc, r[1]!, size, false);
        return BigInt(tracePrintk(bytes.subarray(i, i + size), [r[3]!, r[4]!, r[5]!]));
      }
      case 26:
      case 68: {
        const offset = Number(r[2]! & MASK32);
        const len = Number(r[4]! & MASK32);
        const [bytes, i] = this.locate(pc, r[3]!, len, true);
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
