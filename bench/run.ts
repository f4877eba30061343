/**
 * `npm run bench`: every benchmark of the project, one after another, each in a process
 * of its own so that one's garbage and JIT state do not colour the next.
 *
 *   node dist/bench/run.js [--quick] [--sections=e2e,ping,send,receive,bpf,workers,parser,bpf-parser,echo-pinned,requester,memory] [kcm bench flags...]
 *
 * - e2e, ping, send, receive, bpf: the sections of `kcm bench` (src/cli/bench/), run in
 *   one `kcm bench --goals` process: kcm against the hand-written framer over net, end to
 *   end, ping-pong, the send side alone, the receive side alone, and the eBPF parser
 *   against lengthField. Flags other than --sections go to it (e.g. --strict, --sizes).
 * - workers: sockets in worker threads against the main thread (`workers.ts`).
 * - parser: the stream parser alone against the hand-written reader (`parser.ts`).
 * - bpf-parser: a compiled eBPF parser against lengthField, no sockets (`bpf-parser.ts`).
 * - echo-pinned: an echo server replying to the origin of each message against the same
 *   server replying unpinned (`echo-pinned.ts`).
 * - requester: `Requester` against a hand-written request map (`requester.ts`).
 * - memory: heap and RSS of a kcm sender and receiver over 30 s at 16 B, flat after
 *   warm-up (`memory.ts`).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const kcmBench = ['e2e', 'ping', 'send', 'receive', 'bpf'] as const;
const own = ['workers', 'parser', 'bpf-parser', 'echo-pinned', 'requester', 'memory'] as const;
const all: readonly string[] = [...kcmBench, ...own];

const args = process.argv.slice(2);
let sections: string[] = [...all];
const rest: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  const value = a.startsWith('--sections=') ? a.slice('--sections='.length) : a === '--sections' ? args[++i] : undefined;
  if (value === undefined) {
    rest.push(a);
    continue;
  }
  const names = value.split(',').filter(Boolean);
  const unknown = names.filter((n) => !all.includes(n));
  if (unknown.length > 0 || names.length === 0) {
    process.stderr.write(`bench: unknown section '${unknown.join(',') || value}'; sections are ${all.join(',')}\n`);
    process.exit(2);
  }
  sections = names;
}
const quick = rest.includes('--quick');
const json = rest.includes('--json');

/** Short settings for the project's own sections under --quick. */
const quickArgs: Record<(typeof own)[number], string[]> = {
  workers: ['--count=50k', '--heavy-count=4k', '--rounds=1', '--sections=trivial,heavy'],
  parser: ['--bytes=16m', '--rounds=5'],
  'bpf-parser': ['--bytes=8m', '--rounds=5'],
  'echo-pinned': ['--count=20k', '--rounds=1'],
  requester: ['--count=20k', '--rounds=1'],
  memory: ['--seconds=4'],
};
const scripts: Record<(typeof own)[number], string> = {
  workers: 'workers.js', parser: 'parser.js', 'bpf-parser': 'bpf-parser.js', 'echo-pinned': 'echo-pinned.js', requester: 'requester.js', memory: 'memory.js',
};

const runs: { name: string; argv: string[] }[] = [];
const chosen = kcmBench.filter((s) => sections.includes(s));
if (chosen.length > 0) {
  runs.push({ name: chosen.join(','), argv: [join(here, '..', 'src', 'cli', 'main.js'), 'bench', '--goals', '--section', chosen.join(','), ...rest] });
}
if (!json) {
  // --json is kcm bench's machine output; the other benchmarks print tables.
  for (const s of own) if (sections.includes(s)) runs.push({ name: s, argv: [join(here, scripts[s]), ...(quick ? quickArgs[s] : [])] });
}

let failed = 0;
for (const run of runs) {
  if (!json) process.stdout.write(`\n=== ${run.name} ===\n`);
  const r = spawnSync(process.execPath, run.argv, { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    process.stderr.write(`bench: ${run.name} failed (${r.status ?? r.signal})\n`);
  }
}
process.exitCode = failed === 0 ? 0 : 1;
