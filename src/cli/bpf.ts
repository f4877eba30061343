/**
 * `kcm bpf`: inspect, run and execute eBPF parser programs.
 *
 *   kcm bpf dump OBJ [--section S] [--program P]
 *   kcm bpf run OBJ --hex BYTES [--section S] [--program P] [--interpret]
 *   kcm bpf exec [MEMORY_HEX] [--elf] [--program HEX] [--interpret] [--debug]
 *   kcm bpf include
 *
 * `exec` is the plugin interface of eBPF conformance suites: the program as hex bytes on
 * stdin (or an ELF object as hex with --elf), the memory block as hex in the first
 * argument; it prints r0 in hex and exits 0, or prints the reason on stderr and exits 1.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KcmError, errnoName } from '../errors.js';
import { disassembleAll } from '../bpf/disassembler.js';
import { SHF_EXECINSTR, STT_FUNC, readElf, type ElfObject } from '../bpf/elf-reader.js';
import { Interpreter } from '../bpf/interpreter.js';
import { chooseSection, functionsOf, linkProgram } from '../bpf/linker.js';
import { loadBpf, loadProgram } from '../bpf/load-bpf.js';
import { decodeInsns, INSN_SIZE } from '../bpf/opcodes.js';
import { noControls, printable } from '../bpf/printable.js';
import { loadRaw } from '../bpf/raw-mode.js';
import { verify } from '../bpf/verifier.js';

const usage = `usage:
  kcm bpf dump OBJ [--section S] [--program P]
      sections, disassembly and the verifier's verdict
  kcm bpf run OBJ --hex BYTES [--section S] [--program P] [--interpret]
      the parser's result on BYTES: a length, need more, or an errno
  kcm bpf exec [MEMORY_HEX] [--elf] [--program HEX] [--interpret] [--debug]
      raw mode: program bytes as hex on stdin (an ELF object with --elf), prints r0 in hex
  kcm bpf include
      the folder of kcm.h, for clang -I "$(npx kcm bpf include)"`;

const RELOC_NAMES: Record<number, string> = { 1: 'R_BPF_64_64', 2: 'R_BPF_64_ABS64', 3: 'R_BPF_64_ABS32', 4: 'R_BPF_64_NODYLD32', 10: 'R_BPF_64_32' };

class UsageError extends Error {}

interface Args {
  positional: string[];
  flags: Map<string, string | true>;
}

const VALUED = new Set(['--section', '--program', '--hex']);

function parseArgs(argv: readonly string[]): Args {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '') continue;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags.set(a.slice(0, eq), a.slice(eq + 1));
      else if (VALUED.has(a)) {
        const v = argv[i + 1];
        if (v === undefined) throw new UsageError(`${a} needs a value`);
        flags.set(a, v);
        i++;
      } else flags.set(a, true);
    } else positional.push(a);
  }
  return { positional, flags };
}

function str(args: Args, name: string): string | undefined {
  const v = args.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

/** Hex bytes: pairs of digits, optionally separated by whitespace or with 0x prefixes. */
export function parseHex(text: string): Uint8Array {
  const tokens = text.trim().split(/[\s,]+/).filter((t) => t !== '');
  let digits = '';
  for (const token of tokens) {
    const t = token.startsWith('0x') || token.startsWith('0X') ? token.slice(2) : token;
    if (!/^[0-9a-fA-F]*$/.test(t)) throw new UsageError(`not hex: '${token.length > 20 ? `${token.slice(0, 20)}...` : token}'`);
    digits += t.length % 2 === 1 && tokens.length > 1 ? `0${t}` : t;
  }
  if (digits.length % 2 !== 0) throw new UsageError('hex input has an odd number of digits');
  return Uint8Array.from(Buffer.from(digits, 'hex'));
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

function describeResult(value: number): string {
  if (value > 0) return `length ${value}`;
  if (value === 0) return 'need more (0)';
  const name = errnoName(-value);
  return `error ${value}${name === undefined ? ' (unknown errno)' : ` ${name}`}`;
}

function dump(args: Args): number {
  const path = args.positional[0];
  if (path === undefined) throw new UsageError('dump needs an object file');
  const bytes = readFileSync(path);
  const elf: ElfObject = readElf(bytes);
  out(`${printable(path)}: ELF64 eBPF relocatable object, ${elf.sections.length} sections`);
  out('\nSections:');
  out('Idx Name                     Size     Type');
  for (const s of elf.sections) {
    if (s.index === 0) continue;
    const kind = s.flags & SHF_EXECINSTR ? 'TEXT' : s.type === 8 ? 'BSS' : s.type === 1 ? 'DATA' : '';
    out(`${String(s.index).padStart(3)} ${printable(s.name).padEnd(24)} ${s.size.toString(16).padStart(8, '0')} ${kind}`);
  }
  for (const s of elf.sections) {
    if (!(s.flags & SHF_EXECINSTR) || s.size === 0 || s.size % INSN_SIZE !== 0) continue;
    const labels = new Map<number, string>();
    for (const f of functionsOf(elf, s)) labels.set(f.start, printable(f.name));
    if (!labels.has(0)) labels.set(0, printable(s.name));
    out(`\nDisassembly of section ${printable(s.name)}:`);
    out(disassembleAll(decodeInsns(s.data), labels));
    const relocs = elf.relocations.get(s.index) ?? [];
    for (const r of relocs) {
      const sym = elf.symbols[r.symbol];
      const name = sym === undefined ? '' : sym.name || (elf.sections[sym.shndx]?.name ?? '');
      out(`\t\trelocation at instruction ${r.offset / INSN_SIZE}: ${RELOC_NAMES[r.type] ?? `type ${r.type}`} ${printable(name) || `symbol ${r.symbol}`}`);
    }
  }
  const options = { section: str(args, '--section'), program: str(args, '--program') };
  try {
    const section = chooseSection(elf, options.section);
    const program = linkProgram(elf, options);
    const analysis = verify(program, 'parser');
    const funcs = elf.symbols.filter((s) => s.type === STT_FUNC).length;
    out(`\nverifier: accepted ${printable(section.name)}/${printable(program.name)}: ${program.insns.length} instructions, ${analysis.functions.length} function(s)${analysis.hasLoops ? ', loops (run-time budget applies)' : ''} [${funcs} function symbol(s) in the object]`);
    return 0;
  } catch (e) {
    if (e instanceof KcmError) {
      out(`\nverifier: refused: ${noControls(e.message)}`);
      return 1;
    }
    throw e;
  }
}

function run(args: Args): number {
  const path = args.positional[0];
  const hex = str(args, '--hex');
  if (path === undefined) throw new UsageError('run needs an object file');
  if (hex === undefined) throw new UsageError('run needs --hex BYTES');
  const data = Buffer.from(parseHex(hex));
  const options = { section: str(args, '--section'), program: str(args, '--program') };
  let value: number;
  if (args.flags.has('--interpret')) {
    const { program, analysis } = loadProgram(path, options);
    value = new Interpreter(program, analysis).runParser(data);
  } else value = loadBpf(path, options)(data);
  out(describeResult(value));
  return 0;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('latin1');
}

async function exec(args: Args): Promise<number> {
  const programHex = str(args, '--program') ?? (await readStdin());
  const code = parseHex(programHex);
  const memory = parseHex(args.positional.join(' '));
  const raw = loadRaw(code, { elf: args.flags.has('--elf') });
  const res = args.flags.has('--interpret') ? raw.interpret(memory) : raw.run(memory);
  if (res.status === 'loop') {
    err('kcm bpf exec: the program exceeded its instruction budget (ELOOP)');
    return 1;
  }
  if (res.status === 'fault') {
    err('kcm bpf exec: out of bounds memory access (EFAULT)');
    return 1;
  }
  out(`0x${res.r0.toString(16)}`);
  return 0;
}

/** The package's `bpf/` folder, which holds `kcm.h`; this file is in dist/src/cli/. */
export const INCLUDE_DIR = fileURLToPath(new URL('../../../bpf', import.meta.url));

function include(args: Args): number {
  if (args.positional.length > 0 || args.flags.size > 0) throw new UsageError('include takes no arguments');
  if (!existsSync(`${INCLUDE_DIR}/kcm.h`)) {
    err(`kcm bpf include: ${INCLUDE_DIR}/kcm.h is missing from this installation`);
    return 1;
  }
  out(INCLUDE_DIR);
  return 0;
}

/** `kcm bpf ...`: returns the exit code. */
export async function bpfCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    const args = parseArgs(rest);
    switch (command) {
      case 'dump':
        return dump(args);
      case 'run':
        return run(args);
      case 'exec':
        return await exec(args);
      case 'include':
        return include(args);
      case undefined:
      case '-h':
      case '--help':
        out(usage);
        return command === undefined ? 2 : 0;
      default:
        err(`kcm bpf: unknown command '${printable(command)}'\n${usage}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`kcm bpf: ${noControls(e.message)}\n${usage}`);
      return 2;
    }
    if (e instanceof KcmError) {
      err(`kcm bpf ${printable(command ?? '')}: ${noControls(e.message)}`);
      return 1;
    }
    if ((e as { code?: string }).code === 'ENOENT') {
      err(`kcm bpf ${printable(command ?? '')}: ${noControls((e as Error).message)}`);
      return 1;
    }
    throw e;
  }
}
