/**
 * Compiles a verified program to a JavaScript function that V8 optimises.
 *
 * Each 64-bit register is a pair of int32 locals (`r3h`, `r3l`); arithmetic on the pair is
 * exact (carries, unsigned compares, masked shifts, division by zero giving 0 and modulo by
 * zero keeping the dividend). Each eBPF function becomes a JS function; blocks of a function
 * with jumps become cases of a `switch` in a loop, falling through where eBPF falls through.
 * The stack, the context's cb and the global data live in buffers allocated once per loaded
 * program, so a run allocates nothing.
 *
 * The generated source is assembled only from numbers the verifier has validated and from
 * fixed templates in this file; no string of the object ever reaches it.
 */
import { kPositionalParser, type Parser, type PositionalParser } from '../parsers/parser.js';
import type { LinkedProgram } from './linker.js';
import {
  BPF_ABS,
  BPF_ADD,
  BPF_ALU,
  BPF_ALU64,
  BPF_AND,
  BPF_ARSH,
  BPF_CALL,
  BPF_CMPXCHG,
  BPF_DIV,
  BPF_END,
  BPF_EXIT,
  BPF_FETCH,
  BPF_IND,
  BPF_JA,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JLE,
  BPF_JLT,
  BPF_JMP,
  BPF_JMP32,
  BPF_JNE,
  BPF_JSET,
  BPF_JSGE,
  BPF_JSGT,
  BPF_JSLE,
  BPF_JSLT,
  BPF_LD,
  BPF_LDX,
  BPF_LSH,
  BPF_MEM,
  BPF_MEMSX,
  BPF_MOD,
  BPF_MOV,
  BPF_MUL,
  BPF_NEG,
  BPF_OR,
  BPF_PSEUDO_CALL,
  BPF_PSEUDO_MAP_VALUE,
  BPF_RSH,
  BPF_ST,
  BPF_STX,
  BPF_SUB,
  BPF_X,
  BPF_XCHG,
  BPF_XOR,
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
  MAX_FRAMES,
  MEM_BASE,
  RET_EFAULT,
  RET_ELOOP,
  STACK_BASE,
  STACK_SIZE,
  ktimeNs,
  prandomU32,
  tracePrintk,
} from './runtime.js';
import { Access, type Analysis, type FunctionInfo, type MemAccess } from './verifier.js';
import { COST_LOAD_BYTES, COST_PRINTK, RUN_BUDGET, blockCosts, stackBytesUsed, type Costs } from './budget.js';

/** What a raw-mode run returns: r0 as two 32-bit halves, or why it stopped. */
export interface RawRun {
  readonly status: 'exit' | 'loop' | 'fault';
  readonly r0: bigint;
}

/** Fixed helper functions the generated code calls; `X` carries a result's high half. */
const PRELUDE = `
let X = 0, H = 0, ab = 0, B = 0;
function mul64(ah, al, bh, bl) {
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  const p01 = a0 * b1, p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const hi = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  X = (hi + Math.imul(ah, bl) + Math.imul(al, bh)) | 0;
  return Math.imul(al, bl);
}
function big(h, l) { return (BigInt(h >>> 0) << 32n) | BigInt(l >>> 0); }
function split(v) { X = Number(BigInt.asIntN(32, v >> 32n)); return Number(BigInt.asIntN(32, v)); }
function udiv64(ah, al, bh, bl) {
  if (bh === 0 && bl === 0) { X = 0; return 0; }
  if (ah === 0 && bh === 0) { X = 0; return (((al >>> 0) / (bl >>> 0)) >>> 0) | 0; }
  return split(big(ah, al) / big(bh, bl));
}
function umod64(ah, al, bh, bl) {
  if (bh === 0 && bl === 0) { X = ah; return al; }
  if (ah === 0 && bh === 0) { X = 0; return ((al >>> 0) % (bl >>> 0)) | 0; }
  return split(big(ah, al) % big(bh, bl));
}
function sdiv64(ah, al, bh, bl) {
  if (bh === 0 && bl === 0) { X = 0; return 0; }
  if (ah === (al >> 31) && bh === (bl >> 31)) { const q = Math.trunc(al / bl); X = q < 0 ? -1 : 0; return q | 0; }
  return split(BigInt.asUintN(64, BigInt.asIntN(64, big(ah, al)) / BigInt.asIntN(64, big(bh, bl))));
}
function smod64(ah, al, bh, bl) {
  if (bh === 0 && bl === 0) { X = ah; return al; }
  if (ah === (al >> 31) && bh === (bl >> 31)) { const r = al % bl; X = r < 0 ? -1 : 0; return r | 0; }
  return split(BigInt.asUintN(64, BigInt.asIntN(64, big(ah, al)) % BigInt.asIntN(64, big(bh, bl))));
}
function shl64(h, l, n) {
  n &= 63;
  if (n === 0) { X = h; return l; }
  if (n < 32) { X = (h << n) | (l >>> (32 - n)); return l << n; }
  X = l << (n - 32); return 0;
}
function shr64(h, l, n) {
  n &= 63;
  if (n === 0) { X = h; return l; }
  if (n < 32) { X = (h >>> n) | 0; return (l >>> n) | (h << (32 - n)); }
  X = 0; return (h >>> (n - 32)) | 0;
}
function sar64(h, l, n) {
  n &= 63;
  if (n === 0) { X = h; return l; }
  if (n < 32) { X = h >> n; return (l >>> n) | (h << (32 - n)); }
  X = h >> 31; return h >> (n - 32);
}
function bswap32(v) {
  return ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
}
function skbLoad(P, PO, PL, off, dst, at, n) {
  if (off > 0x7fffffff || off + n > PL) { dst.fill(0, at, at + n); return -14; }
  if (n > 32) dst.set(P.subarray(PO + off, PO + off + n), at);
  else for (let i = 0; i < n; i++) dst[at + i] = P[PO + off + i];
  return 0;
}
`;

const FRAME0 = STACK_SIZE;

function lit(n: number): string {
  if (!Number.isFinite(n) || !Number.isInteger(n)) throw new Error(`compiler: not an integer: ${n}`);
  return n < 0 ? `(${n})` : String(n);
}

type Mode = Analysis['mode'];

class FunctionCompiler {
  private readonly out: string[] = [];
  private readonly isMain: boolean;
  private readonly budgeted: boolean;

  constructor(
    private readonly prog: LinkedProgram,
    private readonly analysis: Analysis,
    private readonly fn: FunctionInfo,
    private readonly index: number,
    private readonly costs: Costs,
  ) {
    this.isMain = index === 0;
    this.budgeted = costs.budgeted;
  }

  private get mode(): Mode {
    return this.analysis.mode;
  }

  private h(r: number): string {
    return r === 10 ? '0' : `r${r}h`;
  }

  private l(r: number): string {
    if (r !== 10) return `r${r}l`;
    return this.isMain ? lit(STACK_BASE + FRAME0) : `(${STACK_BASE} + FI)`;
  }

  /** The frame-top index into the stack buffer. */
  private fi(): string {
    return this.isMain ? lit(FRAME0) : 'FI';
  }

  /** Ends the run: `why` 1 = packet load out of range, 2 = budget, 3 = fault. */
  private bail(why: 1 | 2 | 3): string {
    if (this.isMain && this.mode === 'parser') return `return ${why === 1 ? 0 : why === 2 ? RET_ELOOP : RET_EFAULT};`;
    if (this.isMain && why === 1) return 'H = 0; return 0;';
    return `ab = ${why}; return 0;`;
  }

  private emit(line: string): void {
    this.out.push(line);
  }

  compile(): string {
    const { fn } = this;
    const regs: string[] = [];
    for (let r = 0; r <= 9; r++) {
      if (!this.isMain && r >= 1 && r <= 5) continue;
      regs.push(`r${r}h = 0, r${r}l = 0`);
    }
    let head: string;
    if (this.isMain) {
      if (this.mode === 'parser') {
        head = `const f0 = (function f0(P) {\n  const PO = PB, PL = PE - PO;\n  let ${regs.join(', ')}, t = 0, u = 0, v = 0, w = 0;\n  r1l = ${CTX_BASE};`;
      } else {
        head = `const f0 = (function f0(P) {\n  const PO = 0, PL = P.length;\n  let ${regs.join(', ')}, t = 0, u = 0, v = 0, w = 0;\n  r1l = ${MEM_BASE}; r2l = PL | 0;`;
      }
    } else {
      head = `const f${this.index} = (function f${this.index}(FI, r1h, r1l, r2h, r2l, r3h, r3l, r4h, r4l, r5h, r5l) {\n  const P = PK, PO = PB, PL = PE - PO;\n  let ${regs.join(', ')}, t = 0, u = 0, v = 0, w = 0;`;
    }
    this.emit(head);
    const blocks = fn.blocks;
    const blockSet = new Set(blocks);
    const single = blocks.length === 1 && !fn.loopHeaders.has(fn.start);
    if (!single) this.emit(`  let pc = ${fn.start};\n  for (;;) {\n  switch (pc) {`);
    for (let bi = 0; bi < blocks.length; bi++) {
      const b = blocks[bi]!;
      if (!single) this.emit(`  case ${b}:`);
      // Find the block's extent and count its instructions.
      let pc = b;
      const body: number[] = [];
      for (;;) {
        body.push(pc);
        const insn = this.prog.insns[pc]!;
        const cls = opClass(insn.code);
        const op = insn.code & 0xf0;
        const next = isLddw(insn.code) ? pc + 2 : pc + 1;
        if ((cls === BPF_JMP || cls === BPF_JMP32) && op !== BPF_CALL) break;
        if (blockSet.has(next) || next >= fn.end) break;
        pc = next;
      }
      if (this.budgeted) this.emit(`    if ((B -= ${this.costs.atBlock[b]}) < 0) { ${this.bail(2)} }`);
      const nextBlock = blocks[bi + 1];
      for (const at of body) this.insn(at, nextBlock, single);
    }
    // Never taken: every jump lands on a block the verifier analysed.
    if (!single) this.emit(`  default: ${this.bail(3)}\n  }\n  }`);
    // Parenthesised, V8 compiles the function with the factory, not on the first message:
    // the first run of a large program does not pay for its compilation.
    this.emit('});');
    return this.out.join('\n');
  }

  private jumpTo(target: number, nextBlock: number | undefined): string {
    return target === nextBlock ? '' : `pc = ${target}; continue;`;
  }

  private insn(pc: number, nextBlock: number | undefined, single: boolean): void {
    const insn = this.prog.insns[pc]!;
    const { code, off, imm } = insn;
    const cls = opClass(code);
    const op = code & 0xf0;
    switch (cls) {
      case BPF_ALU64:
        return this.alu64(insn);
      case BPF_ALU:
        return this.alu32(insn);
      case BPF_JMP:
      case BPF_JMP32: {
        if (op === BPF_EXIT) {
          if (this.isMain && this.mode === 'parser') return this.emit('    return r0l;');
          return this.emit('    H = r0h; return r0l;');
        }
        if (op === BPF_CALL) return this.call(pc, insn);
        if (op === BPF_JA) {
          const target = pc + (cls === BPF_JMP ? off : imm) + 1;
          if (single) return;
          return this.emit(`    ${this.jumpTo(target, nextBlock)}`);
        }
        const cond = this.condition(insn);
        const target = pc + off + 1;
        this.emit(`    if (${cond}) { pc = ${target}; continue; }`);
        if (pc + 1 !== nextBlock) this.emit(`    pc = ${pc + 1}; continue;`);
        return;
      }
      case BPF_LD:
        return this.ld(pc, insn);
      case BPF_LDX:
        return this.ldx(pc, insn);
      case BPF_ST:
      case BPF_STX:
        return this.store(pc, insn);
    }
    throw new Error(`compiler: unexpected opcode 0x${code.toString(16)} at ${pc}`);
  }

  private alu64(insn: Insn): void {
    const { code, dst, src, off, imm } = insn;
    const op = code & 0xf0;
    const dh = this.h(dst);
    const dl = this.l(dst);
    const x = (code & BPF_X) !== 0;
    const sh = x ? this.h(src) : imm < 0 ? '(-1)' : '0';
    const sl = x ? this.l(src) : lit(imm | 0);
    const e = (s: string): void => this.emit(`    ${s}`);
    switch (op) {
      case BPF_MOV:
        if (off === 0) return e(`${dh} = ${sh}; ${dl} = ${sl};`);
        if (off === 32) return e(`${dl} = ${sl}; ${dh} = ${dl} >> 31;`);
        return e(`${dl} = (${sl} << ${32 - off}) >> ${32 - off}; ${dh} = ${dl} >> 31;`);
      case BPF_ADD:
        return e(`t = (${dl} >>> 0) + (${sl} >>> 0); ${dh} = (${dh} + ${sh} + (t > 4294967295 ? 1 : 0)) | 0; ${dl} = t | 0;`);
      case BPF_SUB:
        return e(`t = (${dl} >>> 0) - (${sl} >>> 0); ${dh} = (${dh} - ${sh} - (t < 0 ? 1 : 0)) | 0; ${dl} = t | 0;`);
      case BPF_AND:
        return e(`${dh} &= ${sh}; ${dl} &= ${sl};`);
      case BPF_OR:
        return e(`${dh} |= ${sh}; ${dl} |= ${sl};`);
      case BPF_XOR:
        return e(`${dh} ^= ${sh}; ${dl} ^= ${sl};`);
      case BPF_MUL:
        return e(`${dl} = mul64(${dh}, ${dl}, ${sh}, ${sl}); ${dh} = X;`);
      case BPF_DIV:
        return e(`${dl} = ${off === 1 ? 'sdiv64' : 'udiv64'}(${dh}, ${dl}, ${sh}, ${sl}); ${dh} = X;`);
      case BPF_MOD:
        return e(`${dl} = ${off === 1 ? 'smod64' : 'umod64'}(${dh}, ${dl}, ${sh}, ${sl}); ${dh} = X;`);
      case BPF_NEG:
        return e(`${dh} = (${dl} === 0 ? -${dh} : ~${dh}) | 0; ${dl} = (-${dl}) | 0;`);
      case BPF_LSH:
      case BPF_RSH:
      case BPF_ARSH: {
        if (x) {
          const f = op === BPF_LSH ? 'shl64' : op === BPF_RSH ? 'shr64' : 'sar64';
          return e(`${dl} = ${f}(${dh}, ${dl}, ${sl}); ${dh} = X;`);
        }
        const n = imm & 63;
        if (n === 0) return;
        if (op === BPF_LSH) {
          if (n < 32) return e(`${dh} = (${dh} << ${n}) | (${dl} >>> ${32 - n}); ${dl} = ${dl} << ${n};`);
          return e(`${dh} = ${dl} << ${n - 32}; ${dl} = 0;`);
        }
        if (op === BPF_RSH) {
          if (n < 32) return e(`${dl} = (${dl} >>> ${n}) | (${dh} << ${32 - n}); ${dh} = (${dh} >>> ${n}) | 0;`);
          return e(`${dl} = (${dh} >>> ${n - 32}) | 0; ${dh} = 0;`);
        }
        if (n < 32) return e(`${dl} = (${dl} >>> ${n}) | (${dh} << ${32 - n}); ${dh} = ${dh} >> ${n};`);
        return e(`${dl} = ${dh} >> ${n - 32}; ${dh} = ${dh} >> 31;`);
      }
      case BPF_END:
        // ALU64 class: unconditional byte swap.
        if (imm === 16) return e(`${dl} = ((${dl} & 0xff) << 8) | ((${dl} >>> 8) & 0xff); ${dh} = 0;`);
        if (imm === 32) return e(`${dl} = bswap32(${dl}); ${dh} = 0;`);
        return e(`t = bswap32(${dl}); ${dl} = bswap32(${dh}); ${dh} = t;`);
    }
    throw new Error(`compiler: unexpected ALU64 operation 0x${op.toString(16)}`);
  }

  private alu32(insn: Insn): void {
    const { code, dst, src, off, imm } = insn;
    const op = code & 0xf0;
    const dh = this.h(dst);
    const dl = this.l(dst);
    const x = (code & BPF_X) !== 0;
    const sl = x ? this.l(src) : lit(imm | 0);
    const e = (s: string): void => this.emit(`    ${s} ${dh} = 0;`);
    switch (op) {
      case BPF_MOV:
        if (off === 0) return e(`${dl} = ${sl};`);
        return e(`${dl} = (${sl} << ${32 - off}) >> ${32 - off};`);
      case BPF_ADD:
        return e(`${dl} = (${dl} + ${sl}) | 0;`);
      case BPF_SUB:
        return e(`${dl} = (${dl} - ${sl}) | 0;`);
      case BPF_MUL:
        return e(`${dl} = Math.imul(${dl}, ${sl});`);
      case BPF_DIV:
        if (off === 1) return e(`t = ${sl}; ${dl} = t === 0 ? 0 : (${dl} / t) | 0;`);
        return e(`t = ${sl}; ${dl} = t === 0 ? 0 : (((${dl} >>> 0) / (t >>> 0)) >>> 0) | 0;`);
      case BPF_MOD:
        if (off === 1) return e(`t = ${sl}; ${dl} = t === 0 ? ${dl} : (${dl} % t) | 0;`);
        return e(`t = ${sl}; ${dl} = t === 0 ? ${dl} : ((${dl} >>> 0) % (t >>> 0)) | 0;`);
      case BPF_AND:
        return e(`${dl} &= ${sl};`);
      case BPF_OR:
        return e(`${dl} |= ${sl};`);
      case BPF_XOR:
        return e(`${dl} ^= ${sl};`);
      case BPF_LSH:
        return e(`${dl} = ${dl} << (${sl} & 31);`);
      case BPF_RSH:
        return e(`${dl} = (${dl} >>> (${sl} & 31)) | 0;`);
      case BPF_ARSH:
        return e(`${dl} = ${dl} >> (${sl} & 31);`);
      case BPF_NEG:
        return e(`${dl} = (-${dl}) | 0;`);
      case BPF_END: {
        const swap = x;
        if (imm === 16) return e(swap ? `${dl} = ((${dl} & 0xff) << 8) | ((${dl} >>> 8) & 0xff);` : `${dl} &= 0xffff;`);
        if (imm === 32) return e(swap ? `${dl} = bswap32(${dl});` : '');
        if (swap) return this.emit(`    t = bswap32(${dl}); ${dl} = bswap32(${dh}); ${dh} = t;`);
        return;
      }
    }
    throw new Error(`compiler: unexpected ALU operation 0x${op.toString(16)}`);
  }

  private condition(insn: Insn): string {
    const { code, dst, src, imm } = insn;
    const op = code & 0xf0;
    const x = (code & BPF_X) !== 0;
    const dl = this.l(dst);
    const sl = x ? this.l(src) : lit(imm | 0);
    if (opClass(code) === BPF_JMP32) {
      switch (op) {
        case BPF_JEQ:
          return `${dl} === ${sl}`;
        case BPF_JNE:
          return `${dl} !== ${sl}`;
        case BPF_JSET:
          return `(${dl} & ${sl}) !== 0`;
        case BPF_JGT:
          return `(${dl} >>> 0) > (${sl} >>> 0)`;
        case BPF_JGE:
          return `(${dl} >>> 0) >= (${sl} >>> 0)`;
        case BPF_JLT:
          return `(${dl} >>> 0) < (${sl} >>> 0)`;
        case BPF_JLE:
          return `(${dl} >>> 0) <= (${sl} >>> 0)`;
        case BPF_JSGT:
          return `${dl} > ${sl}`;
        case BPF_JSGE:
          return `${dl} >= ${sl}`;
        case BPF_JSLT:
          return `${dl} < ${sl}`;
        case BPF_JSLE:
          return `${dl} <= ${sl}`;
      }
      throw new Error(`compiler: unexpected jump 0x${op.toString(16)}`);
    }
    const dh = this.h(dst);
    const sh = x ? this.h(src) : imm < 0 ? '(-1)' : '0';
    const cmp = (hiOp: string, loOp: string, signed: boolean): string => {
      const hd = signed ? dh : `(${dh} >>> 0)`;
      const hs = signed ? sh : `(${sh} >>> 0)`;
      return `(${hd} ${hiOp} ${hs} || (${dh} === ${sh} && (${dl} >>> 0) ${loOp} (${sl} >>> 0)))`;
    };
    switch (op) {
      case BPF_JEQ:
        return `${dl} === ${sl} && ${dh} === ${sh}`;
      case BPF_JNE:
        return `${dl} !== ${sl} || ${dh} !== ${sh}`;
      case BPF_JSET:
        return `(${dl} & ${sl}) !== 0 || (${dh} & ${sh}) !== 0`;
      case BPF_JGT:
        return cmp('>', '>', false);
      case BPF_JGE:
        return cmp('>', '>=', false);
      case BPF_JLT:
        return cmp('<', '<', false);
      case BPF_JLE:
        return cmp('<', '<=', false);
      case BPF_JSGT:
        return cmp('>', '>', true);
      case BPF_JSGE:
        return cmp('>', '>=', true);
      case BPF_JSLT:
        return cmp('<', '<', true);
      case BPF_JSLE:
        return cmp('<', '<=', true);
    }
    throw new Error(`compiler: unexpected jump 0x${op.toString(16)}`);
  }

  private ld(pc: number, insn: Insn): void {
    const { code, dst, src, imm } = insn;
    if (isLddw(code)) {
      const hi = this.prog.insns[pc + 1]!.imm;
      if (insn.src === BPF_PSEUDO_MAP_VALUE) return this.emit(`    ${this.h(dst)} = 0; ${this.l(dst)} = ${DATA_BASE + imm * DATA_STRIDE + hi};`);
      return this.emit(`    ${this.h(dst)} = ${lit(hi | 0)}; ${this.l(dst)} = ${lit(imm | 0)};`);
    }
    const size = sizeBytes(code);
    let at: string;
    if ((code & 0xe0) === BPF_ABS) {
      if (imm < 0) return this.emit(`    ${this.bail(1)}`);
      at = lit(imm);
      this.emit(`    if (${imm} > PL - ${size}) { ${this.bail(1)} }`);
    } else if ((code & 0xe0) === BPF_IND) {
      this.emit(`    t = (${this.l(src)} + ${lit(imm | 0)}) | 0;`);
      this.emit(`    if (t < 0 || t > PL - ${size}) { ${this.bail(1)} }`);
      at = 't';
    } else throw new Error(`compiler: unexpected load 0x${code.toString(16)}`);
    // The packet is P[PO .. PO + PL): a message inside a larger chunk, read in place.
    const p = (k: number): string => (at === 't' ? (k === 0 ? 'P[PO + t]' : `P[PO + t + ${k}]`) : `P[PO + ${Number(at) + k}]`);
    let value: string;
    if (size === 1) value = p(0);
    else if (size === 2) value = `(${p(0)} << 8) | ${p(1)}`;
    else value = `(${p(0)} << 24) | (${p(1)} << 16) | (${p(2)} << 8) | ${p(3)}`;
    this.emit(`    r0l = ${value}; r0h = 0;`);
  }

  /**
   * Emits the address computation (into `t`) and bounds check of an access; returns the
   * DataView expression and the index expression.
   */
  private locate(pc: number, a: MemAccess, base: number, off: number, size: number): [string, string, string] {
    const bh = this.h(base);
    const bl = this.l(base);
    const checked = (lo: string, hi: string, regionBase: number, view: string, bytes: string): [string, string, string] => {
      this.emit(`    t = ${bl} - ${regionBase} + ${lit(off)};`);
      this.emit(`    if (${bh} !== 0 || t < ${lo} || t > ${hi} - ${size}) { ${this.bail(3)} }`);
      return [view, 't', bytes];
    };
    switch (a.kind) {
      case Access.StackStatic:
        return ['SV', this.isMain ? lit(FRAME0 + a.at) : `FI + ${lit(a.at)}`, 'SB'];
      case Access.StackOwnChecked:
        return checked(`${this.fi()} - ${STACK_SIZE}`, this.fi(), STACK_BASE, 'SV', 'SB');
      case Access.StackCallerChecked:
        return checked('0', `${this.fi()} - ${STACK_SIZE}`, STACK_BASE, 'SV', 'SB');
      case Access.MemChecked:
        return checked('0', 'ML', MEM_BASE, 'MV', 'MB');
      case Access.DataStatic:
        return [`D${a.region}`, lit(a.at), `DB${a.region}`];
      case Access.DataChecked:
        return checked('0', String(this.prog.regions[a.region]!.bytes.length), DATA_BASE + a.region * DATA_STRIDE, `D${a.region}`, `DB${a.region}`);
      default:
        throw new Error(`compiler: instruction ${pc} has no memory region`);
    }
  }

  private accessOf(pc: number): MemAccess {
    const a = this.analysis.access[pc];
    if (a === undefined) throw new Error(`compiler: instruction ${pc} has no verified access`);
    return a;
  }

  private ldx(pc: number, insn: Insn): void {
    const { code, dst, src, off } = insn;
    const size = sizeBytes(code);
    const sx = (code & 0xe0) === BPF_MEMSX;
    const dh = this.h(dst);
    const dl = this.l(dst);
    const a = this.accessOf(pc);
    if (a.kind === Access.CtxLen) {
      const mask = size === 4 ? '' : ` & ${size === 1 ? 0xff : 0xffff}`;
      return this.emit(`    ${dl} = (PL >>> ${a.at * 8})${mask} | 0; ${dh} = 0;`);
    }
    if (a.kind === Access.CtxZero) return this.emit(`    ${dl} = 0; ${dh} = 0;`);
    let view: string;
    let at: string;
    if (a.kind === Access.CtxCb) {
      view = 'CBV';
      at = lit(a.at);
    } else [view, at] = this.locate(pc, a, src, off, size);
    const e = (s: string): void => this.emit(`    ${s}`);
    switch (size) {
      case 1:
        return e(sx ? `${dl} = ${view}.getInt8(${at}); ${dh} = ${dl} >> 31;` : `${dl} = ${view}.getUint8(${at}); ${dh} = 0;`);
      case 2:
        return e(sx ? `${dl} = ${view}.getInt16(${at}, true); ${dh} = ${dl} >> 31;` : `${dl} = ${view}.getUint16(${at}, true); ${dh} = 0;`);
      case 4:
        return e(sx ? `${dl} = ${view}.getInt32(${at}, true); ${dh} = ${dl} >> 31;` : `${dl} = ${view}.getInt32(${at}, true); ${dh} = 0;`);
      default:
        if (at !== 't') e(`t = ${at};`);
        return e(`${dl} = ${view}.getInt32(t, true); ${dh} = ${view}.getInt32(t + 4, true);`);
    }
  }

  private store(pc: number, insn: Insn): void {
    const { code, dst, src, off, imm } = insn;
    const size = sizeBytes(code);
    const a = this.accessOf(pc);
    const fromReg = opClass(code) === BPF_STX;
    const vl = fromReg ? this.l(src) : lit(imm | 0);
    const vh = fromReg ? this.h(src) : imm < 0 ? '(-1)' : '0';
    let view: string;
    let at: string;
    if (a.kind === Access.CtxCb) {
      view = 'CBV';
      at = lit(a.at);
    } else [view, at] = this.locate(pc, a, dst, off, size);
    const e = (s: string): void => this.emit(`    ${s}`);
    if (fromReg && (code & 0xe0) !== BPF_MEM) return this.atomic(insn, view, at, size);
    switch (size) {
      case 1:
        return e(`${view}.setUint8(${at}, ${vl} & 0xff);`);
      case 2:
        return e(`${view}.setUint16(${at}, ${vl} & 0xffff, true);`);
      case 4:
        return e(`${view}.setInt32(${at}, ${vl}, true);`);
      default:
        if (at !== 't') e(`t = ${at};`);
        return e(`${view}.setInt32(t, ${vl}, true); ${view}.setInt32(t + 4, ${vh}, true);`);
    }
  }

  private atomic(insn: Insn, view: string, at: string, size: number): void {
    const { src, imm } = insn;
    const e = (s: string): void => this.emit(`    ${s}`);
    const sh = this.h(src);
    const sl = this.l(src);
    if (at !== 't') e(`t = ${at};`);
    if (size === 4) {
      e(`u = ${view}.getInt32(t, true);`);
      if (imm === BPF_CMPXCHG) return e(`if (u === r0l) ${view}.setInt32(t, ${sl}, true); r0l = u; r0h = 0;`);
      if (imm === BPF_XCHG) return e(`${view}.setInt32(t, ${sl}, true); ${sl} = u; ${sh} = 0;`);
      const base = imm & ~BPF_FETCH;
      const opx = base === BPF_ADD ? `(u + ${sl}) | 0` : base === BPF_OR ? `u | ${sl}` : base === BPF_AND ? `u & ${sl}` : `u ^ ${sl}`;
      e(`${view}.setInt32(t, ${opx}, true);`);
      if (imm & BPF_FETCH) e(`${sl} = u; ${sh} = 0;`);
      return;
    }
    e(`u = ${view}.getInt32(t, true); v = ${view}.getInt32(t + 4, true);`);
    if (imm === BPF_CMPXCHG) return e(`if (u === r0l && v === r0h) { ${view}.setInt32(t, ${sl}, true); ${view}.setInt32(t + 4, ${sh}, true); } r0l = u; r0h = v;`);
    if (imm === BPF_XCHG) return e(`${view}.setInt32(t, ${sl}, true); ${view}.setInt32(t + 4, ${sh}, true); ${sl} = u; ${sh} = v;`);
    const base = imm & ~BPF_FETCH;
    if (base === BPF_ADD) e(`w = (u >>> 0) + (${sl} >>> 0); ${view}.setInt32(t, w | 0, true); ${view}.setInt32(t + 4, (v + ${sh} + (w > 4294967295 ? 1 : 0)) | 0, true);`);
    else {
      const sym = base === BPF_OR ? '|' : base === BPF_AND ? '&' : '^';
      e(`${view}.setInt32(t, u ${sym} ${sl}, true); ${view}.setInt32(t + 4, v ${sym} ${sh}, true);`);
    }
    if (imm & BPF_FETCH) e(`${sl} = u; ${sh} = v;`);
  }

  private call(pc: number, insn: Insn): void {
    const e = (s: string): void => this.emit(`    ${s}`);
    if (insn.src === BPF_PSEUDO_CALL) {
      const target = pc + insn.imm + 1;
      const callee = this.analysis.functionAt.get(target);
      if (callee === undefined) throw new Error(`compiler: call at ${pc} to unanalysed function ${target}`);
      const args: string[] = [];
      for (let r = 1; r <= 5; r++) args.push(this.h(r), this.l(r));
      e(`r0l = f${callee}(${this.fi()} + ${STACK_SIZE}, ${args.join(', ')}); r0h = H;`);
      if (this.isMain && this.mode === 'parser') e(`if (ab !== 0) return ab === 1 ? 0 : ab === 2 ? ${RET_ELOOP} : ${RET_EFAULT};`);
      else if (this.isMain) e('if (ab !== 0) { H = 0; return 0; }');
      else e('if (ab !== 0) return 0;');
      return;
    }
    switch (insn.imm) {
      case 5:
        return e('u = RT.ktime(); r0l = RT.lo(u); r0h = RT.hi(u);');
      case 7:
        return e('r0l = RT.prandom() | 0; r0h = 0;');
      case 8:
        return e('r0l = 0; r0h = 0;');
      case 6: {
        const a = this.accessOf(pc);
        const region = this.helperRegion(a);
        e(`t = r1l - ${region.base}; w = r2l >>> 0;`);
        e(`if (r1h !== 0 || t < ${region.lo} || t + w > ${region.hi}) { ${this.bail(3)} }`);
        e(`if ((B -= ${COST_PRINTK} + w) < 0) { ${this.bail(2)} }`);
        return e(`r0l = RT.printk(${region.bytes}, t, w, r3h, r3l, r4h, r4l, r5h, r5l); r0h = r0l >> 31;`);
      }
      case 26:
      case 68: {
        const a = this.accessOf(pc);
        const region = this.helperRegion(a);
        e(`t = r3l - ${region.base}; w = r4l >>> 0;`);
        e(`if (r3h !== 0 || t < ${region.lo} || t + w > ${region.hi}) { ${this.bail(3)} }`);
        e(`if ((B -= ${COST_LOAD_BYTES} + (w >>> 4)) < 0) { ${this.bail(2)} }`);
        return e(`r0l = skbLoad(P, PO, PL, r2l >>> 0, ${region.bytes}, t, w); r0h = r0l >> 31;`);
      }
    }
    throw new Error(`compiler: unknown helper ${insn.imm}`);
  }

  private helperRegion(a: MemAccess): { base: number; lo: string; hi: string; bytes: string } {
    switch (a.kind) {
      case Access.StackOwnChecked:
        return { base: STACK_BASE, lo: `${this.fi()} - ${STACK_SIZE}`, hi: this.fi(), bytes: 'SB' };
      case Access.StackCallerChecked:
        return { base: STACK_BASE, lo: '0', hi: `${this.fi()} - ${STACK_SIZE}`, bytes: 'SB' };
      case Access.MemChecked:
        return { base: MEM_BASE, lo: '0', hi: 'ML', bytes: 'MB' };
      case Access.DataChecked:
        return { base: DATA_BASE + a.region * DATA_STRIDE, lo: '0', hi: String(this.prog.regions[a.region]!.bytes.length), bytes: `DB${a.region}` };
      default:
        throw new Error('compiler: helper memory argument without a region');
    }
  }
}

/** The complete source of the factory: takes the runtime object, returns the entry function. */
export function generateSource(prog: LinkedProgram, analysis: Analysis): string {
  const parts: string[] = ['"use strict";', PRELUDE];
  parts.push('const SB = RT.stack, SV = new DataView(SB.buffer, SB.byteOffset, SB.byteLength);');
  parts.push('const CBA = RT.cb, CBV = new DataView(CBA.buffer, CBA.byteOffset, CBA.byteLength);');
  for (let i = 0; i < prog.regions.length; i++) {
    parts.push(`const DB${i} = RT.data[${i}], D${i} = new DataView(DB${i}.buffer, DB${i}.byteOffset, DB${i}.byteLength);`);
  }
  parts.push('let PK = RT.stack, PB = 0, PE = 0, MB = RT.stack, MV = SV, ML = 0;');
  const costs = blockCosts(prog, analysis);
  analysis.functions.forEach((fn, i) => parts.push(new FunctionCompiler(prog, analysis, fn, i, costs).compile()));
  const budget = costs.budgeted ? `B = ${RUN_BUDGET};` : '';
  // [F-7] cb is zeroed scratch; the stack too, so that no byte of one run reaches another.
  const stackBytes = stackBytesUsed(analysis);
  const cb = (analysis.usesCb ? 'CBA.fill(0);' : '') + (stackBytes > 0 ? ` SB.fill(0, 0, ${stackBytes});` : '');
  if (analysis.mode === 'parser') {
    parts.push(`function bpfParser(data) { PK = data; PB = 0; PE = data.length; ab = 0; ${budget} ${cb} return f0(data); }`);
    // The same program over chunk[start, end), without a view per message.
    parts.push(`function bpfParserAt(chunk, start, end) { PK = chunk; PB = start; PE = end; ab = 0; ${budget} ${cb} return f0(chunk); }`);
    parts.push('return { parser: bpfParser, at: bpfParserAt };');
  } else {
    parts.push(`return function bpfRaw(mem) {
  PK = mem; PB = 0; PE = mem.length; MB = mem; MV = new DataView(mem.buffer, mem.byteOffset, mem.byteLength); ML = mem.length; ab = 0; H = 0; ${budget} ${cb}
  const lo = f0(mem);
  return { ab, hi: H, lo };
};`);
  }
  return parts.join('\n');
}

interface Runtime {
  stack: Uint8Array;
  cb: Uint8Array;
  data: Uint8Array[];
  ktime(): bigint;
  lo(v: bigint): number;
  hi(v: bigint): number;
  prandom(): number;
  printk(bytes: Uint8Array, at: number, n: number, ...args: number[]): number;
}

function makeRuntime(prog: LinkedProgram): Runtime {
  return {
    stack: new Uint8Array(STACK_SIZE * MAX_FRAMES),
    cb: new Uint8Array(CTX_CB_SIZE),
    data: prog.regions.map((r) => r.bytes.slice()),
    ktime: ktimeNs,
    lo: (v) => Number(BigInt.asIntN(32, v)),
    hi: (v) => Number(BigInt.asIntN(32, v >> 32n)),
    prandom: prandomU32,
    printk: (bytes, at, n, ...halves) => {
      const args: bigint[] = [];
      for (let i = 0; i + 1 < halves.length; i += 2) args.push((BigInt(halves[i]! >>> 0) << 32n) | BigInt(halves[i + 1]! >>> 0));
      return tracePrintk(bytes.subarray(at, at + n), args);
    },
  };
}

function instantiate(prog: LinkedProgram, analysis: Analysis): unknown {
  const source = generateSource(prog, analysis);
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the source is generated from validated numbers only
  const factory = new Function('RT', source) as (rt: Runtime) => unknown;
  return factory(makeRuntime(prog));
}

/** Compiles a program verified in parser mode into a {@link Parser}. */
export function compileParser(prog: LinkedProgram, analysis: Analysis): Parser {
  if (analysis.mode !== 'parser') throw new Error('compileParser: the program was verified for raw mode');
  const { parser, at } = instantiate(prog, analysis) as { parser: Parser; at: PositionalParser };
  Object.defineProperty(parser, kPositionalParser, { value: at });
  return parser;
}

/** Compiles a program verified in raw mode: runs on a memory block, returns r0 (64 bits). */
export function compileRaw(prog: LinkedProgram, analysis: Analysis): (mem: Uint8Array) => RawRun {
  if (analysis.mode !== 'raw') throw new Error('compileRaw: the program was verified for parser mode');
  const run = instantiate(prog, analysis) as (mem: Uint8Array) => { ab: number; hi: number; lo: number };
  return (mem) => {
    const res = run(mem);
    if (res.ab === 2) return { status: 'loop', r0: 0n };
    if (res.ab === 3) return { status: 'fault', r0: 0n };
    return { status: 'exit', r0: (BigInt(res.hi >>> 0) << 32n) | BigInt(res.lo >>> 0) };
  };
}
