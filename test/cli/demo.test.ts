import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { tableLegend } from '../../src/cli/demo.js';
import { runCli } from './run-cli.js';

test('kcm demo --seconds 1 exits 0, prints every multiplexor and checks every echo', async () => {
  const r = await runCli(['demo', '--seconds', '1']);
  assert.equal(r.code, 0, r.stderr);
  // The server and 2 independent clients with 2 connections each.
  assert.match(r.stdout, /^\*\*\* KCM statistics \(3 MUX\) \*\*\*\*$/m);
  assert.equal((r.stdout.match(/^mux\s+\d+\s+\d+\s+\d+\s+\d+ .*KCMs: 4, Psocks 4, Pinned \d+, Dropped 0$/gm) ?? []).length, 1);
  assert.equal((r.stdout.match(/^mux\s+\d+\s+\d+\s+\d+\s+\d+ .*KCMs: 2, Psocks 2$/gm) ?? []).length, 2);
  for (let i = 0; i < 4; i++) {
    assert.match(r.stdout, new RegExp(`^kcm-${i}\\s+\\d+`, 'm'));
    assert.match(r.stdout, new RegExp(`^psock-${i}\\s+\\d+`, 'm'));
  }
  assert.match(r.stdout, /^ok: all \d+ echoes came back intact, each to the client that sent it/m);
  // Each block says which side it is, server first, right above its mux row.
  assert.match(r.stdout, /^-- server: 4 KCM sockets echo every message to its origin; 4 psocks, one per accepted TCP connection\nmux\s/m);
  assert.match(r.stdout, /^-- client 1: 2 KCM sockets send and read their own echoes; 2 psocks, one per TCP connection\nmux\s/m);
  assert.match(r.stdout, /^-- client 2: 2 KCM sockets send and read their own echoes; 2 psocks, one per TCP connection\nmux\s/m);
  assert.ok(r.stdout.indexOf('-- server:') < r.stdout.indexOf('-- client 1:'));
  assert.match(r.stdout, /^  Pinned-N: /m, 'the legend explains the pinned replies');
  // The legend explains the columns, and each status word the table shows.
  assert.match(r.stdout, /^legend: RX\/TX-Msgs, RX\/TX-Bytes: /m);
  for (const column of ['Recv-Q', 'Rmem', 'Send-Q', 'Smem']) assert.match(r.stdout, new RegExp(`^  .*${column}.*: `, 'm'));
  for (const word of r.stdout.match(/\b(RxWait|TxWait|WMore|TxStop|RxStop|RdyRx|RxDisabled)$/gm) ?? []) {
    assert.match(r.stdout, new RegExp(`^  .*${word}.*: `, 'm'), `the legend explains ${word}`);
  }
  // Not a TTY: plain progress lines, no carriage returns.
  assert.doesNotMatch(r.stdout, /\r/);
});

test('kcm demo takes --sockets, --connections, --size and --parser length', async () => {
  const r = await runCli(['demo', '--seconds=0.5', '--sockets', '2', '--clients', '1', '--connections', '3', '--size', '4k', '--parser', 'length']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /KCMs: 2, Psocks 3, Pinned/);
  assert.match(r.stdout, /KCMs: 3, Psocks 3/);
  assert.match(r.stdout, /4096-byte messages/);
  assert.doesNotMatch(r.stdout, /^psock-3\s/m);
});

test('kcm demo argument errors print a usage line on stderr and exit 2', async () => {
  const cases: [string[], RegExp][] = [
    [['--sockets', '0'], /--sockets must be at least 1/],
    [['--clients', '0'], /--clients must be at least 1/],
    [['--connections', 'many'], /--connections must be an integer/],
    [['--size', '4'], /--size must be at least 8/],
    [['--seconds'], /--seconds needs a value/],
    [['--bogus'], /unknown option '--bogus'/],
    [['stray'], /unexpected argument 'stray'/],
    [['--workers=maybe'], /--workers takes true or false/],
  ];
  for (const [args, reason] of cases) {
    const r = await runCli(['demo', ...args]);
    assert.equal(r.code, 2, `kcm demo ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, reason);
    assert.match(r.stderr, /^usage: kcm demo .*\[--window N\]/m);
    assert.equal(r.stdout, '');
  }
});

test('kcm demo with a parser object that cannot be loaded exits 1 with the reason', async () => {
  const r = await runCli(['demo', '--seconds', '0.5', '--parser', '/nonexistent/parser.o']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot load the parser '\/nonexistent\/parser\.o'/);
  assert.match(r.stderr, /ENOENT/);
});

test('kcm demo frames with an eBPF parser object (Thrift framed transport)', async () => {
  const thrift = fileURLToPath(new URL('../../../test/fixtures/bpf/thrift.o', import.meta.url));
  const r = await runCli(['demo', '--seconds', '0.5', '--sockets', '2', '--connections', '2', '--size', '1k', '--parser', thrift]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /parser .*thrift\.o/);
  assert.match(r.stdout, /^ok: all \d+ echoes came back intact/m);
});

test('kcm demo --workers echoes from sockets adopted in worker threads', async () => {
  const r = await runCli(['demo', '--seconds', '0.5', '--workers', '--sockets', '2', '--clients', '1', '--connections', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /in worker threads/);
  // The main thread's socket takes nothing; the two adopted ones take every message.
  assert.match(r.stdout, /KCMs: 3, Psocks 2/);
  assert.match(r.stdout, /^kcm-0\s+0\s+0\s.*RxDisabled$/m);
  assert.match(r.stdout, /^-- server: kcm-1\.\.2 in worker threads echo every message to its origin, kcm-0 takes none;/m);
  assert.match(r.stdout, /^  RxDisabled: /m);
  assert.match(r.stdout, /^ok: all \d+ echoes came back intact/m);
});

test('[K-3] kcm demo --clients 3: three independent client multiplexors, each gets only its own echoes', async () => {
  const r = await runCli(['demo', '--seconds', '0.5', '--clients', '3', '--connections', '1', '--sockets', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\*\*\* KCM statistics \(4 MUX\) \*\*\*\*$/m);
  assert.match(r.stdout, /3 clients with 1 connection each/);
  for (let c = 1; c <= 3; c++) assert.match(r.stdout, new RegExp(`^-- client ${c}: 1 KCM socket send and read their own echoes; 1 psock, one per TCP connection\\nmux\\s`, 'm'));
  assert.match(r.stdout, /KCMs: 2, Psocks 3, Pinned \d+, Dropped 0/);
  assert.match(r.stdout, /^ok: all \d+ echoes came back intact, each to the client that sent it/m);
});

test('[ST-7] the demo legend explains the columns always and a status word only where the table shows it', () => {
  const quiet = tableLegend('kcm-0  1  2  3  4  0  0  0  - RxWait\n');
  assert.match(quiet, /Smem: /);
  assert.match(quiet, /RxWait: /);
  assert.doesNotMatch(quiet, /TxStop|RdyRx|Psck-N/);
  const busy = tableLegend('kcm-1 ... Psck-0 TxWait WMore\npsock-0 ... TxStop RxStop Rsvd-1 RxPause RdyRx\nkcm-0 ... RxDisabled\n');
  for (const word of ['Psck-N / Rsvd-N', 'TxWait', 'WMore', 'TxStop', 'RxStop', 'RxPause RdyRx', 'RxDisabled']) assert.match(busy, new RegExp(`^  ${word}: `, 'm'));
  assert.doesNotMatch(busy, /RxWait/);
});
