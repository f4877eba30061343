/**
 * Turns one program of an ELF object into a flat instruction array: the program's function
 * first, then every function it calls (bpf-to-bpf calls, in any executable section), with
 * call offsets rewritten relative to the new layout and `.rodata`/`.data`/`.bss` references
 * turned into data-region pointers. What needs maps, externs or unknown relocations is refused.
 */
import { KcmError } from '../errors.js';
import { printable } from './printable.js';
import {
  R_BPF_64_32,
  R_BPF_64_64,
  R_BPF_NONE,
  SHF_EXECINSTR,
  SHT_NOBITS,
  SHT_PROGBITS,
  STT_FUNC,
  STT_SECTION,
  type ElfObject,
  type ElfSection,
} from './elf-reader.js';
import { BPF_CALL, BPF_JMP, BPF_PSEUDO_CALL, BPF_PSEUDO_MAP_VALUE, INSN_SIZE, decodeInsns, isLddw, type Insn } from './opcodes.js';

/**
 * The most instruction slots a linked program may have. The kernel allows 1M for privileged
 * loads; kcm compiles each eBPF function into one JavaScript function, and past this size
 * compiling and the first runs (before V8 optimises) cost far more than a parser should.
 */
export const MAX_INSNS = 16_384;
/** The most instruction slots one executable section may have (what is decoded of it). */
const MAX_SECTION_INSNS = 1_000_000;
/** The most bytes of `.rodata`/`.data`/`.bss` a program may reference. */
export const MAX_DATA_BYTES = 1 << 20;
/** The most functions (main + bpf-to-bpf callees) in one program. */
export const MAX_FUNCTIONS = 256;

/** A global-data section the program reads (and, unless read-only, writes). */
export interface DataRegion {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly writable: boolean;
}

/** A program ready for the verifier. */
export interface LinkedProgram {
  /** The section the program came from (`''` for raw instruction bytes). */
  readonly section: string;
  /** Its function name. */
  readonly name: string;
  readonly insns: readonly Insn[];
  readonly regions: readonly DataRegion[];
  /** Function names by first instruction index, for listings. */
  readonly labels: ReadonlyMap<number, string>;
}

/** Reasons name sections and symbols of the object: escaped, as they may hold anything. */
function refuse(reason: string): KcmError {
  return new KcmError('EINVAL', `bpf: ${printable(reason)}`);
}

/** Executable sections holding instructions. */
export function programSections(elf: ElfObject): ElfSection[] {
  return elf.sections.filter((s) => s.type === SHT_PROGBITS && (s.flags & SHF_EXECINSTR) !== 0 && s.size > 0);
}

/** A function of a section: its name and instruction range `[start, end)`. */
export interface FunctionRange {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

/** Function ranges of each section, built once per object (a call site looks up, never re-sorts). */
const functionIndex = new WeakMap<ElfObject, Map<number, FunctionRange[] | string>>();

/**
 * Function symbols of a section, sorted by address. A section whose function symbols do
 * not cover whole instructions is refused whenever it is used.
 */
export function functionsOf(elf: ElfObject, section: ElfSection): readonly FunctionRange[] {
  let index = functionIndex.get(elf);
  if (index === undefined) {
    index = new Map();
    const bySection = new Map<number, (typeof elf.symbols)[number][]>();
    for (const s of elf.symbols) {
      if (s.type !== STT_FUNC) continue;
      let list = bySection.get(s.shndx);
      if (list === undefined) bySection.set(s.shndx, (list = []));
      list.push(s);
    }
    for (const [shndx, syms] of bySection) {
      const sec = elf.sections[shndx];
      if (sec === undefined) continue;
      syms.sort((a, b) => a.value - b.value);
      const count = sec.size / INSN_SIZE;
      for (const s of syms) {
        if (s.value % INSN_SIZE !== 0 || s.size % INSN_SIZE !== 0 || s.value + s.size > sec.size || s.value >= sec.size) {
          index.set(shndx, `function symbol '${s.name}' does not cover whole instructions of ${sec.name}`);
          break;
        }
      }
      if (index.has(shndx)) continue;
      index.set(
        shndx,
        syms.map((s, i) => {
          const start = s.value / INSN_SIZE;
          const nextStart = i + 1 < syms.length ? syms[i + 1]!.value / INSN_SIZE : count;
          const end = s.size > 0 ? start + s.size / INSN_SIZE : nextStart;
          return { name: s.name, start, end };
        }),
      );
    }
    functionIndex.set(elf, index);
  }
  const found = index.get(section.index);
  if (found === undefined) return [];
  if (typeof found === 'string') throw refuse(found);
  return found;
}

/** The first function of sorted `fns` starting at or after `start`: its index, or `fns.length`. */
function firstAtOrAfter(fns: readonly FunctionRange[], start: number): number {
  let lo = 0;
  let hi = fns.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (fns[mid]!.start < start) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Picks the section a program is loaded from: the one asked for, `socket_kcm`, or the only one. */
export function chooseSection(elf: ElfObject, section?: string): ElfSection {
  const candidates = programSections(elf);
  if (section !== undefined) {
    const found = candidates.find((s) => s.name === section);
    if (found === undefined) {
      throw refuse(`no program section '${section}' in the object (program sections: ${candidates.map((s) => s.name).join(', ') || 'none'})`);
    }
    return found;
  }
  const kcm = candidates.find((s) => s.name === 'socket_kcm');
  if (kcm !== undefined) return kcm;
  const named = candidates.filter((s) => s.name !== '.text');
  if (named.length === 1) return named[0]!;
  if (named.length === 0 && candidates.length === 1) return candidates[0]!;
  if (candidates.length === 0) throw refuse('the object holds no program section');
  throw refuse(`the object holds several program sections (${named.map((s) => s.name).join(', ')}): pass options.section`);
}

/** Links one program of `elf`; see the module comment. */
export function linkProgram(elf: ElfObject, options: { section?: string; program?: string } = {}): LinkedProgram {
  const section = chooseSection(elf, options.section);
  const sectionInsns = new Map<number, Insn[]>();
  const insnsOf = (s: ElfSection): Insn[] => {
    let list = sectionInsns.get(s.index);
    if (list === undefined) {
      if (s.size % INSN_SIZE !== 0) throw refuse(`section ${s.name} is ${s.size} bytes, not a whole number of instructions`);
      if (s.size / INSN_SIZE > MAX_SECTION_INSNS) throw refuse(`section ${s.name} holds more than ${MAX_SECTION_INSNS} instructions`);
      list = decodeInsns(s.data);
      sectionInsns.set(s.index, list);
    }
    return list;
  };

  const funcs = functionsOf(elf, section);
  let entry: FunctionRange;
  if (options.program !== undefined) {
    const found = funcs.find((f) => f.name === options.program);
    if (found === undefined) {
      throw refuse(`no program '${options.program}' in section ${section.name} (functions: ${funcs.map((f) => f.name).join(', ') || 'none'})`);
    }
    entry = found;
  } else {
    const globals = elf.symbols.filter((s) => s.shndx === section.index && s.type === STT_FUNC && s.bind === 1);
    if (funcs.length === 0) entry = { name: section.name, start: 0, end: section.size / INSN_SIZE };
    else if (globals.length === 1) entry = funcs.find((f) => f.name === globals[0]!.name)!;
    else if (funcs.length === 1) entry = funcs[0]!;
    else throw refuse(`section ${section.name} holds several programs (${funcs.map((f) => f.name).join(', ')}): pass options.program`);
  }

  // Relocations of each section by instruction index.
  const relocsBySection = new Map<number, Map<number, { type: number; symbol: number }>>();
  const relocsOf = (s: ElfSection): Map<number, { type: number; symbol: number }> => {
    let map = relocsBySection.get(s.index);
    if (map === undefined) {
      map = new Map();
      for (const r of elf.relocations.get(s.index) ?? []) {
        if (r.type === R_BPF_NONE) continue;
        if (r.offset % INSN_SIZE !== 0 || r.offset >= s.size) throw refuse(`relocation at byte ${r.offset} of ${s.name} is not on an instruction`);
        map.set(r.offset / INSN_SIZE, r);
      }
      relocsBySection.set(s.index, map);
    }
    return map;
  };

  const regions: DataRegion[] = [];
  const regionOf = new Map<number, number>();
  let dataBytes = 0;
  const dataRegion = (s: ElfSection, what: string): number => {
    let idx = regionOf.get(s.index);
    if (idx !== undefined) return idx;
    const ro = s.name.startsWith('.rodata');
    if (!ro && !s.name.startsWith('.data') && !s.name.startsWith('.bss')) {
      if (s.name === 'maps' || s.name === '.maps' || s.name.startsWith('maps/')) throw refuse(`the program uses map '${what}' (section ${s.name}): maps are not supported`);
      throw refuse(`the program references '${what}' in section ${s.name}, which is not .rodata, .data or .bss`);
    }
    dataBytes += s.size;
    if (dataBytes > MAX_DATA_BYTES) throw refuse(`global data exceeds ${MAX_DATA_BYTES} bytes`);
    const bytes = new Uint8Array(s.size);
    if (s.type !== SHT_NOBITS) bytes.set(s.data);
    idx = regions.length;
    regions.push({ name: s.name, bytes, writable: !ro });
    regionOf.set(s.index, idx);
    return idx;
  };

  interface Pending {
    section: ElfSection;
    start: number;
    end: number;
    name: string;
  }
  const out: Insn[] = [];
  const labels = new Map<number, string>();
  const placed = new Map<string, number>();
  const queue: Pending[] = [{ section, start: entry.start, end: entry.end, name: entry.name }];
  const key = (p: { section: ElfSection; start: number }): string => `${p.section.index}:${p.start}`;
  placed.set(key(queue[0]!), 0);
  // Calls are patched once every callee has a place.
  const calls: { at: number; target: Pending }[] = [];

  for (let q = 0; q < queue.length; q++) {
    const fn = queue[q]!;
    const list = insnsOf(fn.section);
    const relocs = relocsOf(fn.section);
    if (fn.start < 0 || fn.end > list.length || fn.start >= fn.end) throw refuse(`function ${fn.name} has an invalid range in ${fn.section.name}`);
    const base = out.length;
    if (base + (fn.end - fn.start) > MAX_INSNS) throw refuse(`the program exceeds ${MAX_INSNS} instructions`);
    labels.set(base, fn.name);
    for (let i = fn.start; i < fn.end; i++) {
      const insn = list[i]!;
      const reloc = relocs.get(i);
      const isCall = insn.code === (BPF_JMP | BPF_CALL) && insn.src === BPF_PSEUDO_CALL;
      if (reloc !== undefined) {
        const sym = elf.symbols[reloc.symbol]!;
        const what = sym.name || `symbol ${reloc.symbol}`;
        if (sym.shndx === 0) throw refuse(`instruction ${i} of ${fn.section.name} refers to '${what}', which is not defined in the object (externs, kfuncs and maps are not supported)`);
        if (sym.shndx >= elf.sections.length) throw refuse(`symbol '${what}' lies in section ${sym.shndx}, which does not exist`);
        const target = elf.sections[sym.shndx]!;
        if (isCall && reloc.type === R_BPF_64_32) {
          if ((target.flags & SHF_EXECINSTR) === 0 || target.type !== SHT_PROGBITS) throw refuse(`call at instruction ${i} of ${fn.section.name} targets non-code section ${target.name}`);
          calls.push({ at: out.length, target: calleeAt(target, sym.value / INSN_SIZE + insn.imm + 1, i) });
          out.push(insn);
          continue;
        }
        if (isLddw(insn.code) && reloc.type === R_BPF_64_64 && insn.src === 0) {
          if (sym.type === STT_FUNC) throw refuse(`instruction ${i} of ${fn.section.name} takes the address of function '${what}' (callbacks are not supported)`);
          const region = dataRegion(target, what);
          const next = list[i + 1];
          if (next === undefined) throw refuse(`lddw at the end of ${fn.section.name}`);
          const offset = (sym.type === STT_SECTION ? 0 : sym.value) + insn.imm;
          if (offset < 0 || offset > target.size) throw refuse(`reference to '${what}' + ${insn.imm} lies outside ${target.name}`);
          out.push({ ...insn, src: BPF_PSEUDO_MAP_VALUE, imm: region });
          out.push({ ...next, imm: offset });
          i++;
          continue;
        }
        throw refuse(`unsupported relocation type ${reloc.type} on instruction ${i} of ${fn.section.name} ('${what}')`);
      }
      if (isCall) {
        calls.push({ at: out.length, target: calleeAt(fn.section, i + insn.imm + 1, i) });
      }
      out.push(insn);
    }
    void base;
  }

  function calleeAt(s: ElfSection, start: number, from: number): Pending {
    const count = s.size / INSN_SIZE;
    if (!Number.isInteger(start) || start < 0 || start >= count) throw refuse(`call at instruction ${from} targets instruction ${start}, outside ${s.name}`);
    const fns = functionsOf(elf, s);
    const k = firstAtOrAfter(fns, start);
    const f = fns[k]?.start === start ? fns[k] : undefined;
    const next = fns[firstAtOrAfter(fns, start + 1)];
    const p: Pending = f !== undefined ? { section: s, start, end: f.end, name: f.name } : { section: s, start, end: next?.start ?? count, name: `${s.name}+${start}` };
    const pk = key(p);
    if (!placed.has(pk)) {
      if (queue.length >= MAX_FUNCTIONS) throw refuse(`the program has more than ${MAX_FUNCTIONS} functions`);
      placed.set(pk, -1);
      queue.push(p);
    }
    return p;
  }

  // Function start indexes in `out`, in queue order.
  const starts = new Map<string, number>();
  {
    let at = 0;
    for (const fn of queue) {
      starts.set(key(fn), at);
      at += fn.end - fn.start;
    }
  }
  for (const c of calls) {
    const target = starts.get(key(c.target))!;
    out[c.at] = { ...out[c.at]!, imm: target - c.at - 1 };
  }
  return { section: section.name, name: entry.name, insns: out, regions, labels };
}

/** A program given as raw instruction bytes (the `exec` plugin interface). */
export function rawProgram(bytes: Uint8Array): LinkedProgram {
  if (bytes.length % INSN_SIZE !== 0) throw refuse(`program is ${bytes.length} bytes, not a whole number of 8-byte instructions`);
  if (bytes.length / INSN_SIZE > MAX_INSNS) throw refuse(`the program exceeds ${MAX_INSNS} instructions`);
  return { section: '', name: 'program', insns: decodeInsns(bytes), regions: [], labels: new Map([[0, 'program']]) };
}
