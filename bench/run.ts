/**
 * `npm run bench`: every benchmark of the project, one section after another, each in a
 * process of its own so that one section's garbage and JIT state do not colour the next.
 *
 *   node dist/bench/run.js [--quick] [--sections=e2e,workers,parser,bpf] [e2e flags...]
 *
 * - e2e: kcm end to end against hand-written net framing, raw TCP and zeromq.js (the same
 *   code as `kcm bench`; see `e2e.ts`). Flags other than --sections go to it.
 * - workers: sockets in worker threads against the main thread (`workers.ts`).
 * - parser: the stream parser alone against a hand-written length loop (`parser.ts`).
 * - bpf: a compiled eBPF parser against lengthField (`bpf-parser.ts`).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const all = ['e2e', 'workers', 'parser', 'bpf'] as const;
type Section = (typeof all)[number];

const args = process.argv.slice(2);
let sections: Section[] = [...all];
const rest: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  const value = a.startsWith('--sections=') ? a.slice('--sections='.length) : a === '--sections' ? args[++i] : undefined;
  if (value === undefined) {
    rest.push(a);
    continue;
  }
  const names = value.split(',').filter(Boolean);
  const unknown = names.filter((n) => !(all as readonly string[]).includes(n));
  if (unknown.length > 0 || names.length === 0) {
    process.stderr.write(`bench: unknown section '${unknown.join(',') || value}'; sections are ${all.join(',')}\n`);
    process.exit(2);
  }
  sections = names as Section[];
}
const quick = rest.includes('--quick');
const json = rest.includes('--json');

/** Short settings for the other sections under --quick. */
const quickArgs: Record<Exclude<Section, 'e2e'>, string[]> = {
  workers: ['--count=50k', '--heavy-count=4k', '--rounds=1', '--sections=trivial,heavy'],
  parser: ['--bytes=16m', '--rounds=5'],
  bpf: ['--bytes=8m', '--rounds=5'],
};
const scripts: Record<Section, string> = { e2e: 'e2e-main.js', workers: 'workers.js', parser: 'parser.js', bpf: 'bpf-parser.js' };

let failed = 0;
for (const section of sections) {
  const sectionArgs = section === 'e2e' ? rest : quick ? quickArgs[section] : [];
  if (json && section !== 'e2e') continue; // --json is the e2e comparison's machine output
  if (!json) process.stdout.write(`\n=== ${section} ===\n`);
  const r = spawnSync(process.execPath, [join(here, scripts[section]), ...sectionArgs], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    process.stderr.write(`bench: section ${section} failed (${r.status ?? r.signal})\n`);
  }
}
process.exitCode = failed === 0 ? 0 : 1;
