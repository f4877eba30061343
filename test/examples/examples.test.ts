import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { startRpcServer, startRpcServerInWorkers, hasWorkerSockets } from '../../examples/rpc-server.js';
import { RpcClient, runRpcClient } from '../../examples/rpc-client.js';
import { ECHO } from '../../examples/rpc-protocol.js';
import { runMemcachedSession, startFakeMemcached } from '../../examples/memcached-client.js';
import { waitFor } from '../helpers/loopback.js';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));
const LIMIT = 60000;

/** Runs an example as its own process; resolves with its exit code and output. Killed after LIMIT ms. */
function run(file: string, args: string[], onLine?: (line: string, child: ChildProcess) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [examples + file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    if (onLine !== undefined) for (const line of d.split('\n')) if (line !== '') onLine(line, child);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('rpc-server and rpc-client run as programs: every call answered, graceful stop', async () => {
  let client: Promise<{ code: number | null; stdout: string; stderr: string }> | undefined;
  const server = run('rpc-server.js', ['--port', '0'], (line, child) => {
    const m = /^listening on (\d+)$/.exec(line);
    if (m === null) return;
    client = run('rpc-client.js', ['--port', m[1]!, '--calls', '300']);
    void client.then(() => child.kill('SIGTERM'));
  });
  const s = await server;
  assert.ok(client !== undefined, `server did not start: ${s.stderr}`);
  const c = await client;
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /^300 calls answered correctly in \d+ ms over 4 connections\n$/);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^mux\s+\d+/m);
  assert.match(s.stdout, /kcm-3/);
});

test('rpc client keeps answering across a dropped connection', async () => {
  const server = await startRpcServer({ sockets: 4 });
  const port = (server.address() as AddressInfo).port;
  const client = new RpcClient({ port });
  try {
    await waitFor(() => client.connector.connected === 4 && server.stats().connections === 4, 10000, '4 connections');
    const first = await Promise.all(Array.from({ length: 50 }, (_, i) => client.call(ECHO, Buffer.from(`a${i}`))));
    assert.deepEqual(first.map(String), Array.from({ length: 50 }, (_, i) => `a${i}`));
    const calls = Array.from({ length: 200 }, (_, i) => client.call(ECHO, Buffer.from(`b${i}`)));
    server.transports[0]!.destroy();
    const second = await Promise.all(calls);
    assert.deepEqual(second.map(String), Array.from({ length: 200 }, (_, i) => `b${i}`));
    await waitFor(() => client.connector.stats().disconnects === 1 && client.connector.connected === 4, 10000, 'reconnected');
  } finally {
    await client.close();
    await new Promise((r) => server.close(r));
  }
});

test('rpc example functions: 4 sockets, 4 connections', async () => {
  const server = await startRpcServer({ sockets: 4 });
  try {
    assert.equal(server.sockets.length, 4);
    const r = await runRpcClient({ port: (server.address() as AddressInfo).port, calls: 400 });
    assert.equal(r.calls, 400);
    assert.equal(server.stats().accepted, 4);
    assert.equal(server.mux.stats().rxMsgs, 400);
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('memcached-client runs as a program against its embedded server', async () => {
  const r = await run('memcached-client.js', []);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'stored 200, read back 200, deleted 100, then 100 missing\n');
});

test('with their server down, the clients exit 1 with one clear line instead of hanging', async () => {
  const net = await import('node:net');
  const probe = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const [rpc, memcached] = await Promise.all([
    run('rpc-client.js', ['--port', String(port), '--calls', '10', '--fail-after', '300']),
    run('memcached-client.js', ['--server', `127.0.0.1:${port}`]),
  ]);
  assert.equal(rpc.code, 1);
  assert.equal(rpc.stdout, '');
  assert.match(rpc.stderr, /^rpc-client: cannot reach the server: ECONNREFUSED \(no connection for 300 ms: connect ECONNREFUSED 127\.0\.0\.1:\d+\)\n$/);
  assert.equal(memcached.code, 1);
  assert.match(memcached.stderr, /^memcached-client: cannot reach the server: ECONNREFUSED \(no connection for 3000 ms: .*\)\n$/);
});

test('memcached session over 4 connections', async () => {
  const server = await startFakeMemcached();
  try {
    const r = await runMemcachedSession('127.0.0.1', (server.address() as AddressInfo).port, 50);
    assert.deepEqual(r, { stored: 50, found: 50, deleted: 25, missing: 25 });
    assert.equal(server.stats().accepted, 4);
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('the README example runs and prints hello', async () => {
  const { readFile, writeFile, rm } = await import('node:fs/promises');
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const readme = await readFile(`${root}README.md`, 'utf8');
  const code = /## Example\n\n```js\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(code !== undefined, 'README has a js example');
  assert.ok(code.split('\n').length <= 25);
  // Inside the package, so that `import 'kcm'` resolves to this build (self-reference).
  const file = `${examples}readme-example.mjs`;
  await writeFile(file, code);
  try {
    const r = await run('readme-example.mjs', []);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello\n');
  } finally {
    await rm(file, { force: true });
  }
});

test('rpc server with its 4 sockets in worker threads', { skip: !hasWorkerSockets && 'this build has no worker sockets' }, async () => {
  const { server, workers } = await startRpcServerInWorkers({ workers: 4 });
  try {
    assert.equal(workers.length, 4);
    assert.equal(server.mux.sockets.length, 5);
    const r = await runRpcClient({ port: (server.address() as AddressInfo).port, calls: 400 });
    assert.equal(r.calls, 400);
    // Every request was answered, none by the main thread's socket.
    assert.equal(server.mux.stats().rxMsgs, 400);
    assert.equal(server.socket.stats().rxMsgs, 0);
  } finally {
    await new Promise((r) => server.close(r));
  }
});

for (const inWorkers of [false, true]) {
  test(`[K-3] two independent rpc clients with colliding request ids against one rpc server${inWorkers ? ' in worker threads' : ''}: each gets its own answers`, { skip: inWorkers && !hasWorkerSockets && 'this build has no worker sockets' }, async () => {
    const server = inWorkers ? (await startRpcServerInWorkers({ workers: 4 })).server : await startRpcServer({ sockets: 4 });
    const port = (server.address() as AddressInfo).port;
    const clients = [new RpcClient({ port }), new RpcClient({ port })];
    try {
      const answers = await Promise.all(clients.map((c, k) => Promise.all(
        Array.from({ length: 300 }, (_, i) => c.call(ECHO, Buffer.from(`client ${k} call ${i}`))),
      )));
      answers.forEach((list, k) => assert.deepEqual(list.map(String), Array.from({ length: 300 }, (_, i) => `client ${k} call ${i}`)));
      assert.equal(server.mux.stats().rxMsgs, 600, 'no call was made twice');
    } finally {
      for (const c of clients) await c.close();
      await new Promise((r) => server.close(r));
    }
  });
}
