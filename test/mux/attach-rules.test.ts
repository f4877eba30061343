/**
 * Attach rules that Linux enforces in the kernel, tested through the userspace decision
 * that replaces each one (spec §11, docs/api.md): an unreadable argument, a parser
 * that is not one, no allocation-failure path, the psock's own reference on
 * the transport, which transport handlers are taken over, and no privilege
 * needed anywhere. Public API only.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { KcmError, KcmSocket, Multiplexor, loadBpf } from '../../src/index.js';
import { P4, FrameReader, closeAll, frame, sleep, tcpPair, tcpPairs, waitFor } from '../helpers/loopback.js';
import { closeMux, errorsOf, numberedRun, numberOf, RawCollector, receiveN } from '../helpers/mux.js';

after(closeAll);

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');

const EVENTS = ['data', 'readable', 'end', 'close', 'error', 'drain', 'connect'] as const;

function listeners(s: net.Socket): Record<string, Function[]> {
  const out: Record<string, Function[]> = {};
  for (const e of EVENTS) out[e] = s.listeners(e);
  return out;
}

test('[A-1] options that cannot be read: the getter\'s error propagates and nothing changes', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const app = new RawCollector(local);
    const before = listeners(local);
    const boom = new Error('cannot read this option');
    const unreadable = [
      { get parser(): never { throw boom; } },
      { parser: P4, get maxMessageSize(): never { throw boom; } },
      { parser: P4, get assemblyTimeout(): never { throw boom; } },
    ];
    for (const options of unreadable) {
      assert.throws(() => k.attach(local, options as never), (err: unknown) => err === boom);
      assert.deepEqual(listeners(local), before, 'the transport\'s listeners are untouched');
    }
    for (const options of [null, undefined, 42, 'parser']) {
      assert.throws(() => k.attach(local, options as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    }
    assert.equal(k.mux.stats().psockAttach, 0);
    assert.equal(k.mux.psocks.length, 0);
    // The application still owns the stream: its bytes reach its own listener.
    remote.write('still the app\'s');
    await waitFor(() => app.bytes.toString() === 'still the app\'s', 5000, 'the app listener');
    assert.equal(local.isPaused(), false);
  } finally {
    k.close();
  }
});

test('[A-3] a parser that is not a function is ERR_INVALID_ARG_TYPE; an object that is no BPF program is EINVAL', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const before = listeners(local);
    for (const parser of [undefined, null, 42, 'socket_kcm', {}, Buffer.from([0x7f, 0x45, 0x4c, 0x46])]) {
      assert.throws(() => k.attach(local, { parser } as never), (err: unknown) => {
        assert.ok(err instanceof TypeError);
        assert.equal((err as NodeJS.ErrnoException).code, 'ERR_INVALID_ARG_TYPE');
        assert.match(err.message, /options\.parser/);
        return true;
      });
      assert.deepEqual(listeners(local), before);
    }
    assert.equal(k.mux.stats().psockAttach, 0);
    // The kernel's EINVAL for "not a BPF program" is loadBpf's, before any attach.
    for (const object of [Buffer.from('not an ELF object'), Buffer.alloc(64)]) {
      assert.throws(() => loadBpf(object), (err: unknown) => err instanceof KcmError && err.code === 'EINVAL' && err.errno === 22);
    }
    // Refused parsers left the transport attachable with a real one.
    k.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 2));
    assert.deepEqual((await receiveN(k, 2)).map(numberOf), [0, 1]);
  } finally {
    k.close();
  }
});

test('[A-7][P-9] attach has no allocation-failure errno: 32 transports on one mux, each its own index, each working', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(32);
  const psocks = pairs.map((p) => k.attach(p.local, { parser: P4 }));
  assert.deepEqual(psocks.map((p) => p.index), Array.from({ length: 32 }, (_, i) => i));
  assert.equal(k.mux.stats().psockAttach, 32);
  for (let i = 0; i < pairs.length; i++) pairs[i]!.remote.write(numberedRun(i, 1));
  const got = (await receiveN(k, 32)).map(numberOf).sort((a, b) => a - b);
  assert.deepEqual(got, Array.from({ length: 32 }, (_, i) => i));
  for (const p of psocks) assert.equal(p.stats().rxMemFail, 0);
  for (const p of pairs) k.unattach(p.local);
  assert.equal(k.mux.psocks.length, 0);
  assert.equal(k.mux.stats().psockUnattach, 32);
});

test('[A-9][X-12] the psock holds its transport and the multiplexor: dropping the app\'s references changes nothing', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const { local, remote } = await tcpPair();
  const echoes = new FrameReader(remote);
  let muxRef: WeakRef<Multiplexor> | undefined;
  // The application keeps no reference to its KCM socket, its multiplexor or the psock;
  // only the attachment (and the socket's own listener) keeps them.
  (() => {
    const k = KcmSocket.create();
    k.attach(local, { parser: P4 });
    k.on('message', (m: Buffer) => void k.send(m));
    muxRef = new WeakRef(k.mux);
  })();
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(10);
  }
  const mux = muxRef!.deref();
  assert.ok(mux !== undefined, 'the multiplexor is still alive');
  try {
    assert.ok(Multiplexor.live().includes(mux), 'and listed as live');
    remote.write(numberedRun(0, 3));
    await waitFor(() => echoes.frames.length === 3, 5000, 'the echoes');
    assert.deepEqual(echoes.frames.map(numberOf), [0, 1, 2]);
    // Unattach needs only the transport, which the psock still names.
    const [psock] = mux.psocks;
    assert.equal(psock!.transport, local);
    mux.sockets[0]!.unattach(psock!.transport);
    assert.equal(mux.psocks.length, 0);
    assert.equal(local.destroyed, false);
  } finally {
    for (const s of mux.sockets) s.close();
  }
});

test('[A-10] while attached the app\'s data listeners are not called, its error and close listeners still are', async () => {
  const { local, remote } = await tcpPair();
  const appData: Buffer[] = [];
  const appErrors: Error[] = [];
  let appClosed = 0;
  local.on('data', (c: Buffer) => appData.push(c));
  local.on('error', (err: Error) => appErrors.push(err));
  local.on('close', () => appClosed++);
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    const psockErrors = errorsOf(psock);
    remote.write(frame('to the mux'));
    assert.equal((await receiveN(k, 1))[0]!.subarray(4).toString(), 'to the mux');
    assert.deepEqual(appData, [], 'data-ready is replaced: the app reads nothing');
    remote.resetAndDestroy();
    await waitFor(() => psockErrors.length === 1 && appClosed === 1, 5000, 'the psock error and the app\'s close');
    assert.equal(psockErrors[0]!.code, 'EPIPE');
    assert.equal(appErrors.length, 1, 'the error report is not replaced: the app sees the transport error');
    assert.equal((appErrors[0] as NodeJS.ErrnoException).code, 'ECONNRESET');
    assert.equal(psockErrors[0]!.cause, appErrors[0]);
    assert.deepEqual(appData, []);
  } finally {
    k.close();
  }
});

test('[A-14] nothing needs privileges: an unprivileged process loads an eBPF parser, attaches and echoes', async (t) => {
  const uid = process.getuid?.();
  if (uid === undefined) {
    t.skip('no POSIX user ids on this platform');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'kcm-a14-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'unprivileged.mjs');
  const index = pathToFileURL(join(root, 'dist', 'src', 'index.js')).href;
  const object = join(root, 'test', 'fixtures', 'bpf', 'thrift.o');
  writeFileSync(script, `
import * as net from 'node:net';
import { once } from 'node:events';
const { KcmSocket, loadBpf } = await import(${JSON.stringify(index)});
const parser = loadBpf(${JSON.stringify(object)});
const server = net.createServer().listen(0, '127.0.0.1');
await once(server, 'listening');
const local = net.connect(server.address().port, '127.0.0.1');
const [remote] = await once(server, 'connection');
await once(local, 'connect');
const k = KcmSocket.create();
k.attach(local, { parser });
const f = Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('hello')]);
remote.write(f);
const m = await k.receive({ signal: AbortSignal.timeout(5000) });
process.stdout.write(JSON.stringify({ uid: process.getuid(), message: m.toString('hex') }));
k.close(); local.destroy(); remote.destroy(); server.close();
`);
  // As root, run it as nobody; otherwise this process is unprivileged already.
  const nobody = uid === 0 ? 65534 : uid;
  if (uid === 0) {
    // Let nobody read the script; the build output and fixtures are world-readable here.
    const { chmodSync } = await import('node:fs');
    chmodSync(dir, 0o755);
    chmodSync(script, 0o644);
  }
  const run = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => new Promise((resolve) => {
    execFile(process.execPath, args, { uid: nobody, gid: uid === 0 ? 65534 : undefined, timeout: 20000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, stdout, stderr });
    });
  });
  // A checkout under a private home directory is not readable by nobody: say so and skip.
  const files = [script, fileURLToPath(index), object];
  const readable = await run(['-e', `for (const f of ${JSON.stringify(files)}) require('node:fs').readFileSync(f)`]);
  if (readable.code !== 0) {
    t.skip(`user ${nobody} cannot read the build output: ${readable.stderr.trim().split('\n').find((l) => /Error/.test(l)) ?? readable.stderr.trim()}`);
    return;
  }
  const out = await run([script]);
  assert.equal(out.code, 0, out.stderr);
  const result = JSON.parse(out.stdout) as { uid: number; message: string };
  assert.equal(result.uid, nobody);
  assert.notEqual(result.uid, 0, 'ran without root');
  assert.equal(result.message, Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('hello')]).toString('hex'));
});
