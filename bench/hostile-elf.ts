/**
 * Hostile eBPF objects of a chosen size, for the resource-bomb tests and benchmark: each
 * shape aims at one place where a careless loader spends far more than the object's size.
 *
 * - `rel-sharing`: many REL section headers pointing at the same relocation bytes.
 * - `name-sharing`: thousands of symbols and sections whose names are long suffixes of one
 *   string (`same`: all at one offset; `suffixes`: each at its own offset).
 * - `code-sharing`: many code sections sharing one large blob of instructions, all called.
 * - `linker-calls`: thousands of call sites among thousands of function symbols.
 * - `verifier-loop`: a loop of one-instruction blocks whose state changes one register or
 *   stack slot per pass.
 * - `straight-line`: the largest plain program that fits (one long block).
 */
import { encodeInsns, type Insn } from '../src/bpf/opcodes.js';

const SHT_PROGBITS = 1;
const SHT_SYMTAB = 2;
const SHT_STRTAB = 3;
const SHT_REL = 9;
const SHF_ALLOC = 0x2;
const SHF_EXECINSTR = 0x4;
const STT_FUNC = 2;
const STB_GLOBAL = 1;

/** One section of {@link writeElf}: its own bytes, or a shared blob. */
export interface SectionSpec {
  name: string;
  type: number;
  flags?: number;
  data?: Uint8Array;
  /** Index into `blobs`: the section's bytes are that blob, shared with others. */
  blob?: number;
  link?: number;
  info?: number;
  entsize?: number;
  /** Use this offset into the section-name table instead of adding `name`. */
  nameOffset?: number;
}

/** One symbol for {@link symtab}. */
export interface SymbolSpec {
  nameOffset: number;
  value: number;
  size: number;
  type: number;
  bind: number;
  shndx: number;
}

/**
 * An ELF64 little-endian BPF relocatable object. Section `i` of `sections` gets index
 * `i + 1`; the section-name table is appended last (its extra bytes start at offset
 * `namePrefix.length + 1` when `namePrefix` is given).
 */
export function writeElf(spec: { sections: SectionSpec[]; blobs?: Uint8Array[]; namePrefix?: Uint8Array }): Uint8Array {
  const blobs = spec.blobs ?? [];
  const names: number[] = [0];
  if (spec.namePrefix !== undefined) names.push(...spec.namePrefix, 0);
  const nameAt = (name: string): number => {
    const at = names.length;
    for (let i = 0; i < name.length; i++) names.push(name.charCodeAt(i) & 0xff);
    names.push(0);
    return at;
  };
  const secNames = spec.sections.map((s) => s.nameOffset ?? nameAt(s.name));
  const shstrName = nameAt('.shstrtab');
  const shstrtab = Uint8Array.from(names);
  // Layout: header, blobs, own section data, the name table, then the headers (8-aligned).
  let at = 64;
  const align = (n: number): number => (n + 7) & ~7;
  const blobAt = blobs.map((b) => {
    const o = at;
    at = align(at + b.length);
    return o;
  });
  const dataAt = spec.sections.map((s) => {
    if (s.data === undefined) return 0;
    const o = at;
    at = align(at + s.data.length);
    return o;
  });
  const shstrAt = at;
  at = align(at + shstrtab.length);
  const shoff = at;
  const shnum = spec.sections.length + 2;
  const out = new Uint8Array(shoff + shnum * 64);
  const view = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  view.setUint16(16, 1, true); // ET_REL
  view.setUint16(18, 247, true); // EM_BPF
  view.setUint32(20, 1, true);
  view.setBigUint64(40, BigInt(shoff), true);
  view.setUint16(52, 64, true);
  view.setUint16(58, 64, true);
  view.setUint16(60, shnum, true);
  view.setUint16(62, shnum - 1, true);
  blobs.forEach((b, i) => out.set(b, blobAt[i]!));
  spec.sections.forEach((s, i) => {
    if (s.data !== undefined) out.set(s.data, dataAt[i]!);
  });
  out.set(shstrtab, shstrAt);
  const header = (index: number, name: number, type: number, flags: number, offset: number, size: number, link: number, info: number, entsize: number): void => {
    const h = shoff + index * 64;
    view.setUint32(h, name, true);
    view.setUint32(h + 4, type, true);
    view.setBigUint64(h + 8, BigInt(flags), true);
    view.setBigUint64(h + 24, BigInt(offset), true);
    view.setBigUint64(h + 32, BigInt(size), true);
    view.setUint32(h + 40, link, true);
    view.setUint32(h + 44, info, true);
    view.setBigUint64(h + 48, 8n, true);
    view.setBigUint64(h + 56, BigInt(entsize), true);
  };
  spec.sections.forEach((s, i) => {
    const bytes = s.blob !== undefined ? blobs[s.blob]! : (s.data ?? new Uint8Array(0));
    const offset = s.blob !== undefined ? blobAt[s.blob]! : dataAt[i]!;
    header(i + 1, secNames[i]!, s.type, s.flags ?? 0, offset, bytes.length, s.link ?? 0, s.info ?? 0, s.entsize ?? 0);
  });
  header(shnum - 1, shstrName, SHT_STRTAB, 0, shstrAt, shstrtab.length, 0, 0, 0);
  return out;
}

/** The bytes of a symbol table (entry 0, the null symbol, is added first). */
export function symtab(symbols: readonly SymbolSpec[]): Uint8Array {
  const out = new Uint8Array((symbols.length + 1) * 24);
  const view = new DataView(out.buffer);
  symbols.forEach((s, i) => {
    const at = (i + 1) * 24;
    view.setUint32(at, s.nameOffset, true);
    view.setUint8(at + 4, (s.bind << 4) | s.type);
    view.setUint16(at + 6, s.shndx, true);
    view.setBigUint64(at + 8, BigInt(s.value), true);
    view.setBigUint64(at + 16, BigInt(s.size), true);
  });
  return out;
}

/** The bytes of one REL entry. */
export function rel(offset: number, type: number, symbol: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(offset), true);
  view.setUint32(8, type, true);
  view.setUint32(12, symbol, true);
  return out;
}

const i = (code: number, dst = 0, src = 0, off = 0, imm = 0): Insn => ({ code, dst, src, off, imm });
const RET0: Insn[] = [i(0xb7, 0, 0, 0, 0), i(0x95)];
const PROG_FLAGS = SHF_ALLOC | SHF_EXECINSTR;

/** A string table: NUL, then `text`, NUL. */
function strings(text: string): Uint8Array {
  const out = new Uint8Array(text.length + 2);
  for (let k = 0; k < text.length; k++) out[k + 1] = text.charCodeAt(k) & 0xff;
  return out;
}

/** The hostile shapes by name; each builds an object of about `bytes` bytes (at most 1 MiB). */
export const SHAPES = {
  'rel-sharing'(bytes: number): Uint8Array {
    const entries = Math.max(1, Math.min(4096, Math.floor(bytes / 4 / 16)));
    const blob = new Uint8Array(entries * 16);
    for (let k = 0; k < entries; k++) blob.set(rel(0, 0, 0), k * 16);
    const headers = Math.max(1, Math.floor((bytes - blob.length - 256) / 64));
    const sections: SectionSpec[] = [
      { name: 'socket_kcm', type: SHT_PROGBITS, flags: PROG_FLAGS, data: encodeInsns(RET0) },
      { name: '.symtab', type: SHT_SYMTAB, data: symtab([]), link: 3, entsize: 24 },
      { name: '.strtab', type: SHT_STRTAB, data: strings('') },
    ];
    const relName = 'rel';
    for (let k = 0; k < headers; k++) {
      sections.push({ name: relName, nameOffset: k === 0 ? undefined : 0, type: SHT_REL, blob: 0, link: 2, info: 1, entsize: 16 });
    }
    return writeElf({ sections, blobs: [blob] });
  },

  'name-sharing-same'(bytes: number): Uint8Array {
    return nameSharing(bytes, false);
  },

  'name-sharing-suffixes'(bytes: number): Uint8Array {
    return nameSharing(bytes, true);
  },

  'code-sharing'(bytes: number): Uint8Array {
    const sectionsCount = 250;
    const main: Insn[] = [];
    for (let k = 0; k < sectionsCount; k++) main.push(i(0x85, 0, 1, 0, -1));
    main.push(...RET0);
    const bodyInsns = Math.max(2, Math.floor((bytes - sectionsCount * (64 + 24 + 16) - main.length * 8 - 4096) / 8));
    const body: Insn[] = [];
    for (let k = 0; k < bodyInsns - 2; k++) body.push(i(0x07, 0, 0, 0, 1));
    body.unshift(i(0xb7, 0, 0, 0, 0));
    body.push(i(0x95));
    const syms: SymbolSpec[] = [{ nameOffset: 1, value: 0, size: main.length * 8, type: STT_FUNC, bind: STB_GLOBAL, shndx: 1 }];
    const relocs = new Uint8Array(sectionsCount * 16);
    for (let k = 0; k < sectionsCount; k++) {
      syms.push({ nameOffset: 6, value: 0, size: body.length * 8, type: STT_FUNC, bind: 0, shndx: 4 + k });
      relocs.set(rel(k * 8, 10, k + 2), k * 16);
    }
    const sections: SectionSpec[] = [
      { name: 'socket_kcm', type: SHT_PROGBITS, flags: PROG_FLAGS, data: encodeInsns(main) },
      { name: '.rel', type: SHT_REL, data: relocs, link: 3, info: 1, entsize: 16 },
      { name: '.symtab', type: SHT_SYMTAB, data: symtab(syms), link: 4 + sectionsCount, entsize: 24 },
    ];
    for (let k = 0; k < sectionsCount; k++) sections.push({ name: `.text.${k}`, type: SHT_PROGBITS, flags: PROG_FLAGS, blob: 0 });
    sections.push({ name: '.strtab', type: SHT_STRTAB, data: strings('main\0body') });
    return writeElf({ sections, blobs: [encodeInsns(body)] });
  },

  'linker-calls'(bytes: number): Uint8Array {
    // Half the bytes are call sites, half tiny functions with a symbol each.
    const calls = Math.max(1, Math.floor(bytes / 2 / 8));
    const funcs = Math.max(1, Math.floor(bytes / 2 / (16 + 24)));
    const targets = Math.min(funcs, 200);
    const insns: Insn[] = [];
    for (let k = 0; k < calls; k++) {
      // Call function k % targets, which starts at calls + 2 + 2 * (k % targets).
      const target = calls + 2 + 2 * (k % targets);
      insns.push(i(0x85, 0, 1, 0, target - k - 1));
    }
    insns.push(...RET0);
    const syms: SymbolSpec[] = [{ nameOffset: 1, value: 0, size: insns.length * 8, type: STT_FUNC, bind: STB_GLOBAL, shndx: 1 }];
    for (let k = 0; k < funcs; k++) {
      syms.push({ nameOffset: 6, value: insns.length * 8, size: 16, type: STT_FUNC, bind: 0, shndx: 1 });
      insns.push(...RET0);
    }
    return writeElf({
      sections: [
        { name: 'socket_kcm', type: SHT_PROGBITS, flags: PROG_FLAGS, data: encodeInsns(insns) },
        { name: '.symtab', type: SHT_SYMTAB, data: symtab(syms), link: 3, entsize: 24 },
        { name: '.strtab', type: SHT_STRTAB, data: strings('main\0f') },
      ],
    });
  },

  'verifier-loop'(bytes: number): Uint8Array {
    const insns: Insn[] = [];
    // r0..r9 and every stack slot start as distinct known constants.
    for (let r = 0; r <= 9; r++) insns.push(i(0xb7, r, 0, 0, r + 1));
    for (let s = 1; s <= 64; s++) insns.push(i(0x7a, 10, 0, -8 * s, s));
    insns.push(i(0x85, 0, 0, 0, 7)); // r0 = prandom: unknown
    for (let r = 1; r <= 5; r++) insns.push(i(0xb7, r, 0, 0, r + 1));
    const loopStart = insns.length;
    const budget = Math.floor((bytes - 1024) / 8) - insns.length - 4;
    // The body rotates values one register or slot at a time, each instruction its own
    // block (a jump to the next instruction), so unknown-ness creeps one step per pass.
    const step: Insn[] = [];
    for (let r = 1; r < 9; r++) step.push(i(0xbf, r, r + 1));
    step.push(i(0x79, 9, 10, -8));
    for (let s = 1; s < 64; s++) step.push(i(0x79, 6, 10, -8 * (s + 1)), i(0x7b, 10, 6, -8 * s));
    step.push(i(0x7b, 10, 0, -8 * 64));
    let k = 0;
    while (insns.length - loopStart + 2 < budget) {
      insns.push(step[k % step.length]!, i(0x25, 0, 0, 0, 5));
      k++;
    }
    // if r0 == 0 goto out; gotol loop (a 32-bit jump reaches back over any body).
    insns.push(i(0x15, 0, 0, 1, 0));
    insns.push(i(0x06, 0, 0, 0, loopStart - insns.length - 1));
    insns.push(...RET0);
    return writeElf({
      sections: [
        { name: 'socket_kcm', type: SHT_PROGBITS, flags: PROG_FLAGS, data: encodeInsns(insns) },
      ],
    });
  },

  'straight-line'(bytes: number): Uint8Array {
    const n = Math.max(2, Math.floor((bytes - 512) / 8));
    const insns: Insn[] = [i(0xb7, 0, 0, 0, 0)];
    for (let k = 0; k < n - 2; k++) insns.push(k % 2 === 0 ? i(0x07, 0, 0, 0, k) : i(0xa7, 0, 0, 0, k));
    insns.push(i(0x95));
    return writeElf({ sections: [{ name: 'socket_kcm', type: SHT_PROGBITS, flags: PROG_FLAGS, data: encodeInsns(insns) }] });
  },
} as const;

export type ShapeName = keyof typeof SHAPES;

function nameSharing(bytes: number, suffixes: boolean): Uint8Array {
  const long = 'n'.repeat(4095);
  // Symbols all named by the one long string; section headers too.
  const budget = bytes - 4096 * 2 - 512;
  const count = Math.max(1, Math.floor(budget / 2 / 24));
  const headers = Math.max(1, Math.floor(budget / 2 / 64));
  const syms: SymbolSpec[] = [];
  for (let k = 0; k < count; k++) syms.push({ nameOffset: suffixes ? 1 + (k % 4000) : 1, value: 0, size: 0, type: 0, bind: 0, shndx: 0 });
  const sections: SectionSpec[] = [
    { name: 'socket_kcm', type: SHT_PROGBITS, flags: PROG_FLAGS, data: encodeInsns(RET0) },
    { name: '.symtab', type: SHT_SYMTAB, data: symtab(syms), link: 3, entsize: 24 },
    { name: '.strtab', type: SHT_STRTAB, data: strings(long) },
  ];
  for (let k = 0; k < headers; k++) sections.push({ name: '', nameOffset: suffixes ? 1 + (k % 4000) : 1, type: 0 });
  const prefix = new Uint8Array(4095).fill(0x6e);
  return writeElf({ sections, namePrefix: prefix });
}
