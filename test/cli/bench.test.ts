import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './run-cli.js';

interface Spread {
  median: number;
  min: number;
  max: number;
}

test('kcm bench --json gives parseable results for every contender', async () => {
  const r = await runCli([
    'bench', '--quick', '--json', '--sizes', '256', '--connections', '1', '--rounds', '1',
    '--measure-ms', '50', '--warmup-ms', '20', '--ping-count', '50',
  ], 90_000);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as {
    throughput: { contender: string; size: number; connections: number; msgsPerSec: Spread; mbPerSec: Spread; errors: string[] }[];
    latency: { contender: string; p50us: Spread; p99us: Spread }[];
    goals: { what: string; ratio: number; met: boolean }[];
    skipped: Record<string, string>;
  };
  const names = res.throughput.map((t) => t.contender);
  for (const c of ['kcm', 'net', 'raw']) assert.ok(names.includes(c), `${c} in ${names.join(',')}`);
  assert.ok(names.includes('zeromq') || res.skipped.zeromq !== undefined);
  for (const t of res.throughput) {
    assert.equal(t.size, 256);
    assert.equal(t.connections, 1);
    assert.deepEqual(t.errors, []);
    assert.ok(t.msgsPerSec.median > 0, `${t.contender} delivered messages`);
    assert.ok(Math.abs(t.mbPerSec.median - (t.msgsPerSec.median * 256) / 1e6) < 1e-6);
  }
  const pingers = res.latency.map((l) => l.contender);
  assert.ok(pingers.includes('kcm') && pingers.includes('net'));
  for (const l of res.latency) assert.ok(l.p50us.median > 0 && l.p99us.median >= l.p50us.median);
  assert.ok(res.goals.some((g) => g.what.includes('kcm/net')));
});

test('kcm bench argument errors print a usage line and exit 2', async () => {
  for (const args of [['--rounds', 'x'], ['--contenders', 'kcm,grpc'], ['--kcm-send', 'fast'], ['--sizes', '']]) {
    const r = await runCli(['bench', ...args]);
    assert.equal(r.code, 2, `kcm bench ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^usage: kcm bench /m);
  }
});
