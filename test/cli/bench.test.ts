import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './run-cli.js';

interface Spread {
  median: number;
  min: number;
  max: number;
}

interface Results {
  throughput: { section: string; contender: string; size: number; connections: number; msgsPerSec: Spread; mbPerSec: Spread; vsNet: number; rounds: number[]; errors: string[] }[];
  latency: { section: string; contender: string; p50us: Spread; p99us: Spread; vsNet: number; errors: string[] }[];
  goals?: { what: string; ratio: number; met: boolean }[];
  skipped: Record<string, string>;
}

const short = ['--quick', '--sizes', '256', '--connections', '1', '--measure-ms', '50', '--warmup-ms', '20', '--ping-count', '50'];

test('kcm bench --json: every section gives figures for every row, each ratio against the hand framer (net)', async () => {
  const r = await runCli(['bench', ...short, '--json', '--section', 'all'], 110_000);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as Results;
  assert.equal(res.goals, undefined, 'no goals without --goals');
  const rows = (section: string): string[] => res.throughput.filter((t) => t.section === section).map((t) => t.contender);
  const e2e = rows('e2e');
  for (const c of ['kcm', 'net', 'net-naive']) assert.ok(e2e.includes(c), `${c} in ${e2e.join(',')}`);
  assert.ok(e2e.includes('zeromq') || /npm install zeromq/.test(res.skipped.zeromq ?? ''), 'zeromq ran or its absence says how to add it');
  assert.ok(!e2e.includes('raw'), 'no unframed row');
  assert.deepEqual(rows('send'), ['kcm many', 'kcm many-nocopy', 'kcm many-yield', 'kcm send', 'kcm try-send', 'net']);
  assert.deepEqual(rows('receive'), ['kcm message', 'kcm many', 'net']);
  assert.deepEqual(rows('bpf'), ['kcm', 'kcm-bpf', 'net']);
  for (const t of res.throughput) {
    assert.equal(t.size, 256);
    assert.equal(t.connections, 1);
    assert.deepEqual(t.errors, []);
    assert.equal(t.rounds.length, 1);
    assert.ok(t.msgsPerSec.median > 0, `${t.section} ${t.contender} delivered messages`);
    assert.ok(Math.abs(t.mbPerSec.median - (t.msgsPerSec.median * 256) / 1e6) < 1e-6);
    const net = res.throughput.find((b) => b.section === t.section && b.contender === 'net')!;
    assert.ok(Math.abs(t.vsNet - t.msgsPerSec.median / net.msgsPerSec.median) < 1e-9, `${t.section} ${t.contender} ratio is against net`);
  }
  const pingers = res.latency.map((l) => l.contender);
  assert.ok(pingers.includes('kcm') && pingers.includes('net'));
  for (const l of res.latency) assert.ok(l.p50us.median > 0 && l.p99us.median >= l.p50us.median);
});

test('kcm bench prints labelled tables for users, goals only with --goals', async () => {
  const plain = await runCli(['bench', ...short, '--contenders', 'kcm,net'], 60_000);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /^== e2e: end to end/m);
  assert.match(plain.stdout, /^ {2}net +hand-written 4-byte length framing/m);
  assert.match(plain.stdout, /^size +conns +contender +msgs\/s .* MB\/s .* vs net/m);
  assert.match(plain.stdout, /^256 B +1 +kcm +[\d.]+ [kM]?/m);
  assert.match(plain.stdout, /^== ping: ping-pong/m);
  assert.doesNotMatch(plain.stdout, /goal|missed|raw/i);

  const withGoals = await runCli(['bench', ...short, '--contenders', 'kcm,net', '--no-ping', '--goals'], 60_000);
  assert.equal(withGoals.code, 0, `a missed goal fails only with --strict: ${withGoals.stderr}`);
  assert.match(withGoals.stdout, /^== goals/m);
  assert.match(withGoals.stdout, /^e2e: 256 B x1 kcm \/ net msgs\/s +[\d.]+x +>= 0\.8x +(met|missed)$/m);
});

test('kcm bench argument errors print a usage line and exit 2', async () => {
  for (const args of [['--rounds', 'x'], ['--contenders', 'kcm,grpc'], ['--kcm-send', 'fast'], ['--sizes', ''], ['--section', 'nope'], ['--strict']]) {
    const r = await runCli(['bench', ...args]);
    assert.equal(r.code, 2, `kcm bench ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^usage: kcm bench /m);
  }
});

test('kcm bench ratios pair the rounds: a machine that slows down between rounds moves both rows of a round', async () => {
  const { pairedRatio } = await import('../../src/cli/bench/command.js');
  // The machine halves its speed after two rounds: each round, kcm runs at 0.9x net.
  const net = [10, 10, 5, 5, 5];
  const kcm = [9, 9, 4.5, 4.5, 4.5];
  assert.ok(Math.abs(pairedRatio(kcm, net) - 0.9) < 1e-9);
  // A drift that splits the rounds unevenly: the ratio of the medians would say 0.45.
  assert.ok(Math.abs(pairedRatio([9, 4.5, 4.5], [10, 10, 5]) - 0.9) < 1e-9);
  // A failed round (NaN) on either side drops that pair; none left: the ratio of the medians.
  assert.ok(Math.abs(pairedRatio([9, Number.NaN, 4.5], [10, 5, 5]) - 0.9) < 1e-9);
  assert.equal(pairedRatio([Number.NaN, 8], [10, Number.NaN]), 0.8);
  assert.ok(Number.isNaN(pairedRatio([Number.NaN], [10])));
});
