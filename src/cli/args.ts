/**
 * Command-line options of the `kcm` subcommands: `--name value`, `--name=value`, `--flag`,
 * `--no-flag`. A mistake throws {@link UsageError}, which the dispatcher turns into a
 * usage line on stderr and exit status 2.
 */

/** A command-line mistake: printed with the command's usage line, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** How one option is read. */
export interface OptionSpec {
  /** `int`: a non-negative integer, with an optional k/m suffix (powers of 1024). */
  type: 'int' | 'number' | 'string' | 'boolean' | 'list';
  /** Smallest accepted value (int, number, each list entry). */
  min?: number;
  /** Largest accepted value (int, number, each list entry). */
  max?: number;
  /** Accepted values of a string option. */
  choices?: readonly string[];
}

export type OptionValues = Record<string, number | string | boolean | number[] | undefined>;

/**
 * Reads `argv` against `spec`; option names are kebab-case on the command line and
 * camelCase in the result. `--help`/`-h` sets `help: true` and stops reading.
 */
export function parseArgs(argv: readonly string[], spec: Readonly<Record<string, OptionSpec>>): OptionValues {
  const out: OptionValues = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      out.help = true;
      return out;
    }
    if (!arg.startsWith('--') || arg === '--') throw new UsageError(`unexpected argument '${arg}'`);
    const eq = arg.indexOf('=');
    let name = camel(arg.slice(2, eq < 0 ? undefined : eq));
    let text: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    let s = spec[name];
    if (s === undefined && text === undefined && name.startsWith('no') && spec[lowerFirst(name.slice(2))]?.type === 'boolean') {
      name = lowerFirst(name.slice(2));
      s = spec[name];
      text = 'false';
    }
    if (s === undefined) throw new UsageError(`unknown option '${arg.slice(0, eq < 0 ? undefined : eq)}'`);
    if (text === undefined) {
      if (s.type === 'boolean') text = 'true';
      else if (i + 1 < argv.length) text = argv[++i]!;
      else throw new UsageError(`option --${kebab(name)} needs a value`);
    }
    out[name] = convert(name, text, s);
  }
  return out;
}

function convert(name: string, text: string, s: OptionSpec): number | string | boolean | number[] {
  const flag = `--${kebab(name)}`;
  switch (s.type) {
    case 'boolean':
      if (/^(1|true|yes)$/i.test(text)) return true;
      if (/^(0|false|no)$/i.test(text)) return false;
      throw new UsageError(`${flag} takes true or false, got '${text}'`);
    case 'string':
      if (s.choices !== undefined && !s.choices.includes(text)) throw new UsageError(`${flag} must be one of ${s.choices.join(', ')}, got '${text}'`);
      if (text === '') throw new UsageError(`${flag} needs a value`);
      return text;
    case 'list': {
      const items = text.split(',').filter((t) => t !== '');
      if (items.length === 0) throw new UsageError(`${flag} needs at least one value`);
      return items.map((t) => checkRange(flag, parseSize(flag, t, true), s));
    }
    case 'int':
      return checkRange(flag, parseSize(flag, text, true), s);
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number, got '${text}'`);
      return checkRange(flag, n, s);
    }
  }
}

/** `256`, `4k`, `64KiB`, `1m` (powers of 1024). */
function parseSize(flag: string, text: string, integer: boolean): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(text);
  if (m === null) throw new UsageError(`${flag} must be a${integer ? 'n integer' : ' number'}, got '${text}'`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const n = Number(m[1]) * unit;
  if (integer && !Number.isInteger(n)) throw new UsageError(`${flag} must be an integer, got '${text}'`);
  return n;
}

function checkRange(flag: string, n: number, s: OptionSpec): number {
  if (s.min !== undefined && n < s.min) throw new UsageError(`${flag} must be at least ${s.min}, got ${n}`);
  if (s.max !== undefined && n > s.max) throw new UsageError(`${flag} must be at most ${s.max}, got ${n}`);
  return n;
}

/** @internal Shared with the benchmarks' option parser. */
export function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** @internal Shared with the benchmarks' option parser. */
export function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** @internal Shared with the benchmarks' option parser. */
export function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}
