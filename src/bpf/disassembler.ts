/**
 * Disassembly in the syntax llvm-objdump prints for the BPF target, so that a verifier
 * message can be compared with `llvm-objdump -d` of the same object.
 */
import {
  BPF_ABS,
  BPF_ALU,
  BPF_ALU64,
  BPF_ATOMIC,
  BPF_CMPXCHG,
  BPF_END,
  BPF_FETCH,
  BPF_IND,
  BPF_JMP,
  BPF_JMP32,
  BPF_LD,
  BPF_LDX,
  BPF_MEM,
  BPF_MEMSX,
  BPF_ST,
  BPF_STX,
  BPF_X,
  BPF_XCHG,
  INSN_SIZE,
  encodeInsns,
  isLddw,
  opClass,
  sizeBytes,
  type Insn,
} from './opcodes.js';

const ALU_SYMBOL: Record<number, string> = {
  0x00: '+=',
  0x10: '-=',
  0x20: '*=',
  0x30: '/=',
  0x40: '|=',
  0x50: '&=',
  0x60: '<<=',
  0x70: '>>=',
  0x90: '%=',
  0xa0: '^=',
  0xb0: '=',
  0xc0: 's>>=',
};

const JMP_SYMBOL: Record<number, string> = {
  0x10: '==',
  0x20: '>',
  0x30: '>=',
  0x40: '&',
  0x50: '!=',
  0x60: 's>',
  0x70: 's>=',
  0xa0: '<',
  0xb0: '<=',
  0xc0: 's<',
  0xd0: 's<=',
};

const ATOMIC_NAME: Record<number, string> = { 0x00: 'add', 0x40: 'or', 0x50: 'and', 0xa0: 'xor' };

function rel(offset: number): string {
  return offset < 0 ? `${offset}` : `+${offset}`;
}

function memRef(base: number, off: number): string {
  return off < 0 ? `(r${base} - ${-off})` : `(r${base} + ${off})`;
}

function uType(code: number): string {
  return `u${sizeBytes(code) * 8}`;
}

/**
 * One instruction in llvm-objdump's syntax. `next` is the following slot, needed for the
 * 64-bit immediate of `lddw`. Unknown encodings print as `<invalid 0xNN>`.
 */
export function disassemble(insn: Insn, next?: Insn): string {
  const { code, dst, src, off, imm } = insn;
  const cls = opClass(code);
  const op = code & 0xf0;
  switch (cls) {
    case BPF_ALU:
    case BPF_ALU64: {
      const r = cls === BPF_ALU64 ? 'r' : 'w';
      const operand = code & BPF_X ? `${r}${src}` : `${imm}`;
      if (op === 0x80) return `${r}${dst} = -${r}${dst}`;
      if (op === BPF_END) {
        if (cls === BPF_ALU64) return `r${dst} = bswap${imm} r${dst}`;
        return `r${dst} = ${code & BPF_X ? 'be' : 'le'}${imm} r${dst}`;
      }
      if (op === 0xb0 && off !== 0 && code & BPF_X) return `${r}${dst} = (s${off})${r}${src}`;
      if ((op === 0x30 || op === 0x90) && off === 1) return `${r}${dst} s${ALU_SYMBOL[op]} ${operand}`;
      const sym = ALU_SYMBOL[op];
      if (sym === undefined) break;
      return `${r}${dst} ${sym} ${operand}`;
    }
    case BPF_JMP:
    case BPF_JMP32: {
      if (op === 0x00) return cls === BPF_JMP ? `goto ${rel(off)}` : `gotol ${rel(imm)}`;
      if (cls === BPF_JMP && op === 0x80) {
        if (src === 1) return `call ${rel(imm)}`;
        return `call ${imm}`;
      }
      if (cls === BPF_JMP && op === 0x90) return 'exit';
      const sym = JMP_SYMBOL[op];
      if (sym === undefined) break;
      const r = cls === BPF_JMP ? 'r' : 'w';
      const operand = code & BPF_X ? `${r}${src}` : `${imm}`;
      return `if ${r}${dst} ${sym} ${operand} goto ${rel(off)}`;
    }
    case BPF_LD: {
      if (isLddw(code)) {
        const hi = next === undefined ? 0 : next.imm;
        if (src === 1) return `r${dst} = map_fd(${imm}) ll`;
        if (src === 2) return `r${dst} = map_value(${imm}, ${hi}) ll`;
        const value = (BigInt(hi >>> 0) << 32n) | BigInt(imm >>> 0);
        return `r${dst} = ${value.toString()} ll`;
      }
      const mode = code & 0xe0;
      if (mode === BPF_ABS) return `r0 = *(${uType(code)} *)skb[${imm}]`;
      if (mode === BPF_IND) return `r0 = *(${uType(code)} *)skb[r${src}${imm === 0 ? '' : imm < 0 ? ` - ${-imm}` : ` + ${imm}`}]`;
      break;
    }
    case BPF_LDX: {
      const mode = code & 0xe0;
      if (mode === BPF_MEM) return `r${dst} = *(${uType(code)} *)${memRef(src, off)}`;
      if (mode === BPF_MEMSX) return `r${dst} = *(s${sizeBytes(code) * 8} *)${memRef(src, off)}`;
      break;
    }
    case BPF_ST:
      if ((code & 0xe0) === BPF_MEM) return `*(${uType(code)} *)${memRef(dst, off)} = ${imm}`;
      break;
    case BPF_STX: {
      const mode = code & 0xe0;
      if (mode === BPF_MEM) return `*(${uType(code)} *)${memRef(dst, off)} = r${src}`;
      if (mode === BPF_ATOMIC) {
        const size = sizeBytes(code);
        const r = size === 8 ? 'r' : 'w';
        const ptr = off < 0 ? `r${dst} - ${-off}` : `r${dst} + ${off}`;
        if (imm === BPF_XCHG) return `${r}${src} = xchg${size === 8 ? '' : '32'}_${size * 8}(${ptr}, ${r}${src})`;
        if (imm === BPF_CMPXCHG) return `${r}0 = cmpxchg${size === 8 ? '' : '32'}_${size * 8}(${ptr}, ${r}0, ${r}${src})`;
        const name = ATOMIC_NAME[imm & ~BPF_FETCH];
        if (name === undefined) break;
        if (imm & BPF_FETCH) return `${r}${src} = atomic_fetch_${name}((${uType(code)} *)(${ptr}), ${r}${src})`;
        return `lock *(${uType(code)} *)${memRef(dst, off)} ${ALU_SYMBOL[imm]} ${r}${src}`;
      }
      break;
    }
  }
  return `<invalid 0x${code.toString(16).padStart(2, '0')}>`;
}

/** The hex bytes of one slot as llvm-objdump prints them: `b7 00 00 00 04 00 00 00`. */
export function insnBytes(insn: Insn): string {
  return Array.from(encodeInsns([insn]), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * A listing of `insns` in llvm-objdump's layout: index, raw bytes, text; `lddw` shows both
 * slots on one line as llvm-objdump does.
 */
export function disassembleAll(insns: readonly Insn[], labels?: ReadonlyMap<number, string>): string {
  const lines: string[] = [];
  for (let i = 0; i < insns.length; i++) {
    const insn = insns[i]!;
    const label = labels?.get(i);
    if (label !== undefined) lines.push(`\n${(i * INSN_SIZE).toString(16).padStart(16, '0')} <${label}>:`);
    let raw = insnBytes(insn);
    const next = insns[i + 1];
    if (isLddw(insn.code) && next !== undefined) raw += ` ${insnBytes(next)}`;
    lines.push(`${String(i).padStart(8)}:\t${raw}\t${disassemble(insn, next)}`);
    if (isLddw(insn.code) && next !== undefined) i++;
  }
  return lines.join('\n');
}
