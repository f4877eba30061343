/**
 * Parser and handler faults [P-3, P-4, P-6, X-4]: a parser that throws, returns a value
 * that is not an integer, a negative number that is no errno, or values that change
 * between calls, and an eBPF program that never ends, each get a defined error on their
 * own psock (never a crash, never an endless loop) while bystanders keep flowing. A
 * 'message' listener that throws leaves the multiplexor consistent (in a child process,
 * which catches the errors with 'uncaughtException').
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { KcmError } from '../../src/errors.js';
import { loadBpf } from '../../src/bpf/load-bpf.js';
import type { Parser } from '../../src/parsers/parser.js';
import { closeAll, frame, sleep } from '../helpers/loopback.js';
import { Rig, firstError } from './rig.js';

after(closeAll);

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = join(here, '..', '..', '..');

interface Case {
  name: string;
  parser: () => Parser;
  /** What the peer writes, in separate writes (a pause between them). */
  writes: Buffer[];
  code: string;
  errno?: number;
  check?: (err: KcmError) => void;
  maxMessageSize?: number;
}

const boom = new Error('parser bug');
const cases: Case[] = [
  { name: 'throws an Error', parser: () => () => { throw boom; }, writes: [frame('x1')], code: 'EBADMSG', check: (e) => assert.equal(e.cause, boom, 'the thrown error is the cause') },
  { name: 'throws a non-Error value', parser: () => () => { throw 'a string'; }, writes: [frame('x1')], code: 'EBADMSG' },
  { name: 'returns NaN', parser: () => () => NaN, writes: [frame('x1')], code: 'EPROTO' },
  { name: 'returns a non-integer (1.5)', parser: () => () => 1.5, writes: [frame('x1')], code: 'EPROTO' },
  { name: 'returns Infinity', parser: () => () => Infinity, writes: [frame('x1')], code: 'EPROTO' },
  { name: 'returns -Infinity', parser: () => () => -Infinity, writes: [frame('x1')], code: 'EPROTO' },
  { name: 'returns -0.5', parser: () => () => -0.5, writes: [frame('x1')], code: 'EPROTO' },
  { name: 'returns 2^53 (not a safe integer)', parser: () => () => 2 ** 53, writes: [frame('x1')], code: 'EPROTO' },
  { name: 'returns a string', parser: () => (() => '8') as unknown as Parser, writes: [frame('x1')], code: 'EPROTO' },
  { name: 'returns undefined', parser: () => (() => undefined) as unknown as Parser, writes: [frame('x1')], code: 'EPROTO' },
  { name: 'returns a negative number that is no errno (-100000)', parser: () => () => -100000, writes: [frame('x1')], code: 'EBADMSG', errno: 100000 },
  { name: 'returns -2^40', parser: () => () => -(2 ** 40), writes: [frame('x1')], code: 'EBADMSG', errno: 2 ** 40 },
  { name: 'returns a known negative errno (-12)', parser: () => () => -12, writes: [frame('x1')], code: 'ENOMEM' },
  {
    name: 'asks for more, then returns a length it could have known (changing values)',
    parser: () => { let n = 0; return () => (n++ === 0 ? 0 : 3); },
    writes: [Buffer.from([0, 0, 0, 8]), Buffer.from('12345678')],
    code: 'EPROTO',
  },
  {
    name: 'returns a different length on each call (valid, then shrinking below what it saw)',
    parser: () => { const seq = [6, 0, 2]; let n = 0; return () => seq[Math.min(n++, seq.length - 1)]!; },
    writes: [Buffer.from('abcdef'), Buffer.from('ghij'), Buffer.from('klmn')],
    code: 'EPROTO',
  },
  {
    name: 'never decides (always returns 0): stopped at maxMessageSize',
    parser: () => () => 0,
    writes: [Buffer.alloc(3000, 1), Buffer.alloc(3000, 2)],
    code: 'EMSGSIZE',
    maxMessageSize: 4096,
  },
];

for (const c of cases) {
  test(`a parser that ${c.name} fails its psock with ${c.code}`, async () => {
    const rig = await Rig.create(2);
    try {
      rig.start();
      await rig.runRounds(5);
      let calls = 0;
      const inner = c.parser();
      const parser: Parser = (data) => { calls++; return inner(data); };
      const s = await rig.suspect(c.maxMessageSize === undefined ? { parser } : { parser, maxMessageSize: c.maxMessageSize });
      for (const w of c.writes) {
        s.pair.remote.write(w);
        await sleep(30);
      }
      const err = await firstError(s);
      assert.ok(err instanceof KcmError);
      assert.equal(err.code, c.code, `${c.code}, got ${err.code}: ${err.message}`);
      if (c.errno !== undefined) assert.equal(err.errno, c.errno);
      c.check?.(err);
      // Nothing more is parsed: more bytes do not call the parser again (no endless loop).
      const after = calls;
      assert.ok(after <= c.writes.length, `the parser ran ${after} times for ${c.writes.length} chunks`);
      s.pair.remote.write(frame('x-more'));
      await rig.runRounds(10);
      assert.equal(calls, after, 'not called after the error');
      await rig.verify([s]);
      assert.equal(s.errors.length, 1, "'error' once");
      for (const r of rig.received) for (const p of r) assert.ok(!p.startsWith('x'), `nothing of the faulty stream delivered (${p})`);
    } finally {
      rig.close();
    }
  });
}

test('an eBPF program that loops is stopped by the instruction budget: ELOOP, and the bystanders flow', async () => {
  const parser = loadBpf(join(repo, 'test', 'reliability', 'fixtures', 'runaway.o'));
  assert.equal(parser(Buffer.from([0, 0, 0, 1, 7])), 5, 'a normal header frames as Thrift');
  const rig = await Rig.create(2);
  try {
    rig.start();
    await rig.runRounds(5);
    const s = await rig.suspect({ parser });
    s.pair.remote.write(frame('x-fine'));
    s.pair.remote.write(Buffer.from([0xff, 0, 0, 4, 1, 2, 3, 4]));
    const err = await firstError(s);
    assert.equal(err.code, 'ELOOP');
    assert.equal(err.errno, 40);
    await rig.runRounds(10);
    await rig.verify([s]);
    assert.ok(rig.received.some((r) => r.includes('x-fine')), 'the message before the runaway one was delivered');
  } finally {
    rig.close();
  }
});

test("'message' and 'psockerror' listeners that throw do not corrupt the multiplexor", async () => {
  const script = join(here, 'fixtures', 'listener-throws.js');
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [script], { timeout: 60000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`child failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    thrown: number; got: string[][]; outbound: number; outBytes: number;
    socketRx: number[]; socketQueued: number[]; psockRx: number[]; psockErrors: (string | null)[];
  };
  const N = 3000;
  assert.ok(r.thrown > N / 7, `listeners threw (${r.thrown} times)`);
  const all = r.got.flat();
  assert.equal(new Set(all).size, all.length, 'no message delivered twice');
  for (let c = 0; c < 2; c++) for (let i = 0; i < N; i++) assert.ok(all.includes(`c${c}:${i}`), `c${c}:${i} delivered`);
  assert.ok(all.includes('c0:last'), 'messages flow after a throwing psockerror listener');
  for (const list of r.got) {
    const last = new Map<string, number>();
    for (const p of list) {
      const [conn, seq] = p.split(':') as [string, string];
      if (seq === 'last') continue;
      assert.ok(Number(seq) > (last.get(conn) ?? -1), `order per connection (${p})`);
      last.set(conn, Number(seq));
    }
  }
  assert.equal(r.outbound, r.outBytes, 'every outbound byte reached the peers');
  assert.deepEqual(r.socketRx, r.got.map((g) => g.length), 'socket rxMsgs count what was delivered');
  assert.deepEqual(r.socketQueued, [0, 0], 'nothing left queued');
  assert.equal(r.psockRx[0]! + r.psockRx[1]!, all.length, 'psock rxMsgs add up to the deliveries');
  assert.deepEqual(r.psockErrors, [null, 'EPIPE']);
});
