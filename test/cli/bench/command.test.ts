import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exitStatus, formatResults, goals, type BenchOptions, type BenchResults, type ThroughputResult } from '../../../src/cli/bench/command.js';
import { zeromqMissing } from '../../../src/cli/bench/contenders/zeromq.js';

const options: BenchOptions = {
  sections: ['e2e'], contenders: ['kcm', 'net'], kcmSend: 'many', kcmReceive: 'message', sizes: undefined, connections: undefined,
  rounds: 1, measureMs: 100, warmupMs: 10, pingCount: 10, pingWarmup: 1, goals: true, profile: undefined,
};

function row(contender: string, size: number, msgs: number): ThroughputResult {
  const m = { median: msgs, min: msgs, max: msgs };
  const b = (msgs * size) / 1e6;
  return { section: 'e2e', contender, size, connections: 1, msgsPerSec: m, mbPerSec: { median: b, min: b, max: b }, vsNet: Number.NaN, rounds: [msgs], errors: [], notes: [] };
}

function results(kcm16: number, kcm64k: number): BenchResults {
  return {
    node: 'v20', cpus: 2, options, skipped: {}, latency: [],
    throughput: [row('kcm', 16, kcm16), row('net', 16, 1000), row('kcm', 65536, kcm64k), row('net', 65536, 100)],
  };
}

test('goals: kcm against net, msgs/s at 16 B (>= 0.8x) and MB/s at 64 KiB (>= 0.9x)', () => {
  const g = goals(results(790, 95));
  assert.deepEqual(g.map((x) => [x.what, x.target, x.met]), [
    ['e2e: 16 B x1 kcm / net msgs/s', '>= 0.8x', false],
    ['e2e: 64 KiB x1 kcm / net MB/s', '>= 0.9x', true],
  ]);
  assert.ok(Math.abs(g[0]!.ratio - 0.79) < 1e-9);
  assert.ok(goals(results(800, 95)).every((x) => x.met));
});

test('a missed goal changes the exit status only when strict; a failed case always does', () => {
  const res = results(100, 95);
  res.goals = goals(res);
  assert.equal(exitStatus(res, false), 0);
  assert.equal(exitStatus(res, true), 1);
  const ok = results(900, 95);
  ok.goals = goals(ok);
  assert.equal(exitStatus(ok, true), 0);
  ok.throughput[0]!.errors.push('no message arrived while measuring');
  assert.equal(exitStatus(ok, false), 1);
});

test('the report names the baseline and prints goals only when they were asked for', () => {
  const res = results(500, 95);
  const text = formatResults(res);
  assert.match(text, /ratios \("vs net"\) are the median over rounds of a row's figure over the other's in the same round/);
  assert.doesNotMatch(text, /goal/);
  res.goals = goals(res);
  assert.match(formatResults(res), /^e2e: 16 B x1 kcm \/ net msgs\/s +0\.50x +>= 0\.8x +missed$/m);
});

test('a missing zeromq gives the command that adds it', () => {
  assert.match(zeromqMissing(Object.assign(new Error("Cannot find package 'zeromq' imported from x"), { code: 'ERR_MODULE_NOT_FOUND' })), /npm install zeromq to compare against ZeroMQ/);
  assert.match(zeromqMissing(new Error('libzmq.so: cannot open shared object file')), /libzmq\.so.*npm install zeromq/);
});
