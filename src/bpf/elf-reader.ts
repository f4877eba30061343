/**
 * A reader of ELF64 little-endian relocatable objects as `clang -O2 -target bpf -c` builds
 * them: section headers, the symbol table and its strings, and REL relocations.
 *
 * Every offset and count is checked against the file before use, so a truncated or hostile
 * object is refused with `EINVAL` and never reads out of range, loops without bound or
 * allocates more than the file's own size.
 */
import { KcmError } from '../errors.js';
import { printable } from './printable.js';

/** Section types used here. */
export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_RELA = 4;
export const SHT_NOBITS = 8;
export const SHT_REL = 9;

/** Section flags. */
export const SHF_WRITE = 0x1;
export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;

/** Symbol types. */
export const STT_NOTYPE = 0;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_SECTION = 3;

/** BPF relocation types. */
export const R_BPF_NONE = 0;
export const R_BPF_64_64 = 1;
export const R_BPF_64_32 = 10;

const EM_BPF = 247;
const ET_REL = 1;
const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
const REL_SIZE = 16;
const MAX_NAME = 4096;

/** One section header, with its bytes (empty for `SHT_NOBITS`). */
export interface ElfSection {
  readonly index: number;
  readonly name: string;
  readonly type: number;
  readonly flags: number;
  readonly size: number;
  readonly link: number;
  readonly info: number;
  readonly data: Uint8Array;
}

/** One symbol of `.symtab`. */
export interface ElfSymbol {
  readonly name: string;
  readonly value: number;
  readonly size: number;
  readonly type: number;
  readonly bind: number;
  readonly shndx: number;
}

/** One REL entry: the byte offset it patches in its section, its type and symbol index. */
export interface ElfRelocation {
  readonly offset: number;
  readonly type: number;
  readonly symbol: number;
}

/** A parsed object. */
export interface ElfObject {
  readonly sections: readonly ElfSection[];
  readonly symbols: readonly ElfSymbol[];
  /** Relocations by the index of the section they patch. */
  readonly relocations: ReadonlyMap<number, readonly ElfRelocation[]>;
}

function bad(reason: string): KcmError {
  return new KcmError('EINVAL', `bpf: not a usable eBPF object: ${printable(reason)}`);
}

/** Reads a 64-bit little-endian field that must fit a safe integer. */
function u64(view: DataView, at: number, what: string): number {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  if (hi >= 0x200000) throw bad(`${what} is out of range`);
  return hi * 0x100000000 + lo;
}

/** The most bytes of names (section and symbol names, each distinct offset once) an object may have. */
export const MAX_NAME_BYTES = 1 << 20;

/**
 * Reads NUL-terminated names out of one string table. Each name is found with one scan
 * that is shared by every offset of the table (the end of each run of bytes is computed
 * once), decoded in one call and cached by offset, so names that share bytes (suffix
 * merging, or a hostile table naming everything with one long string) cost their bytes
 * once; the total decoded is bounded by {@link MAX_NAME_BYTES}.
 */
class StringTable {
  private ends: Int32Array | undefined;
  private readonly cache = new Map<number, string>();

  constructor(
    private readonly bytes: Uint8Array,
    private readonly budget: { left: number },
  ) {}

  name(at: number, what: string): string {
    const cached = this.cache.get(at);
    if (cached !== undefined) return cached;
    const bytes = this.bytes;
    if (at < 0 || at >= bytes.length) throw bad(`${what} name offset ${at} is outside its string table`);
    const end = this.endOf(at);
    if (end < 0 || end - at >= MAX_NAME) throw bad(`${what} name at ${at} is not terminated within ${MAX_NAME} bytes`);
    this.budget.left -= end - at;
    if (this.budget.left < 0) throw bad(`names total more than ${MAX_NAME_BYTES} bytes`);
    const s = end === at ? '' : Buffer.from(bytes.buffer, bytes.byteOffset + at, end - at).toString('latin1');
    this.cache.set(at, s);
    return s;
  }

  /** The index of the NUL ending the name at `at`, or -1 when the table ends first. */
  private endOf(at: number): number {
    if (this.ends === undefined) {
      // One backward pass: the next NUL at or after every index.
      const bytes = this.bytes;
      const ends = new Int32Array(bytes.length);
      let next = -1;
      for (let i = bytes.length - 1; i >= 0; i--) {
        if (bytes[i] === 0) next = i;
        ends[i] = next;
      }
      this.ends = ends;
    }
    return this.ends[at]!;
  }
}

/** Parses `bytes` as an eBPF relocatable object; throws `KcmError` `EINVAL` when it is not one. */
export function readElf(bytes: Uint8Array): ElfObject {
  if (bytes.length < EHDR_SIZE) throw bad(`${bytes.length} bytes is shorter than an ELF header`);
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) throw bad('no ELF magic');
  if (bytes[4] !== 2) throw bad('not a 64-bit ELF object');
  if (bytes[5] !== 1) throw bad('not a little-endian ELF object (big-endian BPF is not supported)');
  if (bytes[6] !== 1) throw bad(`unknown ELF version ${bytes[6]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(16, true);
  const machine = view.getUint16(18, true);
  if (machine !== EM_BPF) throw bad(`machine ${machine} is not BPF (${EM_BPF})`);
  if (type !== ET_REL) throw bad(`ELF type ${type} is not a relocatable object`);
  const shoff = u64(view, 40, 'e_shoff');
  const shentsize = view.getUint16(58, true);
  const shnum = view.getUint16(60, true);
  const shstrndx = view.getUint16(62, true);
  if (shnum === 0) throw bad('no section headers');
  if (shentsize !== SHDR_SIZE) throw bad(`section header size ${shentsize} is not ${SHDR_SIZE}`);
  if (shoff > bytes.length || shnum * SHDR_SIZE > bytes.length - shoff) throw bad('section headers run past the end of the file');
  if (shstrndx >= shnum) throw bad(`section name table index ${shstrndx} is out of range`);

  interface RawSection {
    nameOff: number;
    type: number;
    flags: number;
    offset: number;
    size: number;
    link: number;
    info: number;
    entsize: number;
    data: Uint8Array;
  }
  const raw: RawSection[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * SHDR_SIZE;
    const sType = view.getUint32(at + 4, true);
    const offset = u64(view, at + 24, `section ${i} offset`);
    const size = u64(view, at + 32, `section ${i} size`);
    let data: Uint8Array = new Uint8Array(0);
    if (sType !== SHT_NOBITS && sType !== 0) {
      if (offset > bytes.length || size > bytes.length - offset) throw bad(`section ${i} runs past the end of the file`);
      data = bytes.subarray(offset, offset + size);
    }
    raw.push({
      nameOff: view.getUint32(at, true),
      type: sType,
      flags: u64(view, at + 8, `section ${i} flags`),
      offset,
      size,
      link: view.getUint32(at + 40, true),
      info: view.getUint32(at + 44, true),
      entsize: u64(view, at + 56, `section ${i} entry size`),
      data,
    });
  }
  refuseOverlaps(raw);
  const shstr = raw[shstrndx]!;
  if (shstr.type !== SHT_STRTAB) throw bad('the section name table is not a string table');
  const nameBudget = { left: MAX_NAME_BYTES };
  const shnames = new StringTable(shstr.data, nameBudget);
  const sections: ElfSection[] = raw.map((s, index) => ({
    index,
    name: index === 0 ? '' : shnames.name(s.nameOff, `section ${index}`),
    type: s.type,
    flags: s.flags,
    size: s.size,
    link: s.link,
    info: s.info,
    data: s.data,
  }));

  const symtabs = raw.filter((s) => s.type === SHT_SYMTAB);
  if (symtabs.length > 1) throw bad('more than one symbol table');
  const symbols: ElfSymbol[] = [];
  const symtab = symtabs[0];
  if (symtab !== undefined) {
    if (symtab.entsize !== SYM_SIZE || symtab.size % SYM_SIZE !== 0) throw bad('malformed symbol table');
    if (symtab.link >= shnum || raw[symtab.link]!.type !== SHT_STRTAB) throw bad('the symbol table has no string table');
    const strtab = symtab.link === shstrndx ? shnames : new StringTable(raw[symtab.link]!.data, nameBudget);
    const sv = new DataView(symtab.data.buffer, symtab.data.byteOffset, symtab.data.byteLength);
    const count = symtab.size / SYM_SIZE;
    for (let i = 0; i < count; i++) {
      const at = i * SYM_SIZE;
      const info = sv.getUint8(at + 4);
      const nameOff = sv.getUint32(at, true);
      symbols.push({
        name: nameOff === 0 ? '' : strtab.name(nameOff, `symbol ${i}`),
        type: info & 0x0f,
        bind: info >> 4,
        shndx: sv.getUint16(at + 6, true),
        value: u64(sv, at + 8, `symbol ${i} value`),
        size: u64(sv, at + 16, `symbol ${i} size`),
      });
    }
  }

  const relocations = new Map<number, ElfRelocation[]>();
  for (let i = 0; i < raw.length; i++) {
    const s = raw[i]!;
    if (s.type === SHT_RELA) throw bad(`section ${sections[i]!.name} uses RELA relocations, which clang does not emit for BPF`);
    if (s.type !== SHT_REL) continue;
    if (s.entsize !== REL_SIZE || s.size % REL_SIZE !== 0) throw bad(`malformed relocation section ${sections[i]!.name}`);
    if (s.info >= shnum) throw bad(`relocation section ${sections[i]!.name} patches section ${s.info}, which does not exist`);
    const rv = new DataView(s.data.buffer, s.data.byteOffset, s.data.byteLength);
    const list: ElfRelocation[] = [];
    for (let at = 0; at < s.size; at += REL_SIZE) {
      const symbol = rv.getUint32(at + 12, true);
      if (symbol >= symbols.length) throw bad(`relocation in ${sections[i]!.name} names symbol ${symbol}, which does not exist`);
      list.push({ offset: u64(rv, at, 'relocation offset'), type: rv.getUint32(at + 8, true), symbol });
    }
    const prior = relocations.get(s.info);
    if (prior === undefined) relocations.set(s.info, list);
    else for (const r of list) prior.push(r);
  }
  return { sections, symbols, relocations };
}

/**
 * Refuses sections whose bytes overlap in the file: in a relocatable object each section
 * owns its bytes, and headers sharing bytes would make every reader of them pay again
 * (relocations re-parsed, code re-decoded) far beyond the file's size.
 */
function refuseOverlaps(raw: readonly { type: number; offset: number; size: number }[]): void {
  const spans: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const s = raw[i]!;
    if (s.type !== SHT_NOBITS && s.type !== 0 && s.size > 0) spans.push(i);
  }
  spans.sort((a, b) => raw[a]!.offset - raw[b]!.offset || a - b);
  for (let k = 1; k < spans.length; k++) {
    const prev = raw[spans[k - 1]!]!;
    const cur = raw[spans[k]!]!;
    if (cur.offset < prev.offset + prev.size) {
      throw bad(`sections ${spans[k - 1]} and ${spans[k]} overlap in the file (each section must own its bytes)`);
    }
  }
}

/** True when `bytes` starts with the ELF magic. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}
