/**
 * Small helpers shared by the benchmarks: options from flags or environment and timed
 * rounds; the median and the tables come from the report helpers of `kcm bench`.
 */
import { camel, kebab, lowerFirst } from '../../src/cli/args.js';

export { formatCount, formatSize, formatTable, median } from '../../src/cli/bench/format.js';

/** An option value: a number, a list of numbers, a string or a boolean. */
export type OptionValue = number | number[] | string | boolean;

/**
 * Reads options named as in `defaults` from `--name=value` / `--name value` flags, then
 * from environment variables `<prefix><NAME>` (camelCase becomes SNAKE_CASE), else keeps
 * the default. The default's type decides the parsing: number (accepts `64k`, `4m`,
 * `1g` as powers of 1024), comma-separated list of numbers, boolean (`--name` alone,
 * `--no-name`, `1`/`0`, `true`/`false`), string. `--help` prints the options and exits.
 */
export function parseOptions<T extends Record<string, OptionValue>>(
  defaults: T,
  { argv = process.argv.slice(2), env = process.env, prefix = 'KCM_BENCH_' }: { argv?: string[]; env?: NodeJS.ProcessEnv; prefix?: string } = {},
): T {
  const raw = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      const lines = Object.entries(defaults).map(([k, v]) => `  --${kebab(k)}=${Array.isArray(v) ? v.join(',') : String(v)}  (env ${envName(prefix, k)})`);
      process.stdout.write(`options (default shown):\n${lines.join('\n')}\n`);
      process.exit(0);
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    let name = camel(arg.slice(2, eq < 0 ? undefined : eq));
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (typeof defaults[name] === 'boolean') value = 'true';
    else if (name.startsWith('no') && typeof defaults[lowerFirst(name.slice(2))] === 'boolean') {
      name = lowerFirst(name.slice(2));
      value = 'false';
    } else if (i + 1 < argv.length) value = argv[++i]!;
    else throw new Error(`option --${kebab(name)} needs a value`);
    if (!(name in defaults)) throw new Error(`unknown option --${kebab(name)} (try --help)`);
    raw.set(name, value);
  }
  const out: Record<string, OptionValue> = {};
  for (const [name, def] of Object.entries(defaults)) {
    const text = raw.get(name) ?? env[envName(prefix, name)];
    out[name] = text === undefined ? def : convert(name, text, def);
  }
  return out as T;
}

function convert(name: string, text: string, def: OptionValue): OptionValue {
  if (typeof def === 'number') return parseSize(name, text);
  if (Array.isArray(def)) return text.split(',').filter((s) => s !== '').map((s) => parseSize(name, s));
  if (typeof def === 'boolean') return text === '1' || text === 'true' || text === 'yes';
  return text;
}

/** `65536`, `64k`, `64KiB`, `4m`, `1.5g` (powers of 1024). */
export function parseSize(name: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(text);
  if (m === null) throw new Error(`option ${name}: not a number: ${JSON.stringify(text)}`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.round(Number(m[1]) * unit);
}

function envName(prefix: string, name: string): string {
  return prefix + name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

/**
 * Runs each case once per round, interleaved (a, b, c, a, b, c, ...) so that drift in the
 * machine's speed hits every case alike, and returns each case's per-round seconds.
 * `run` returns anything; it is kept so the work cannot be optimised away.
 */
export function rounds<K extends string>(cases: Record<K, () => unknown>, count: number): Record<K, number[]> {
  const times = {} as Record<K, number[]>;
  const keys = Object.keys(cases) as K[];
  for (const key of keys) times[key] = [];
  let sink: unknown;
  for (let r = 0; r < count; r++) {
    for (const key of keys) {
      const start = process.hrtime.bigint();
      sink = cases[key]();
      times[key].push(Number(process.hrtime.bigint() - start) / 1e9);
    }
  }
  blackhole = sink;
  return times;
}
export let blackhole: unknown;

