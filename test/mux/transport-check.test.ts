/**
 * Which transports can be attached, decided from what a socket says about
 * itself (its address, whether it is connecting or pending), not from the class name of
 * Node's internal handle.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import { isTcpStream } from '../../src/mux/transport-check.js';
import { P4, closeAll, frame, tcpPair, track } from '../helpers/loopback.js';
import { psockError } from '../helpers/mux.js';

after(closeAll);

async function unixServer(t: { after(fn: () => void): void }): Promise<{ file: string; server: net.Server }> {
  const file = path.join(os.tmpdir(), `kcm-check-${process.pid}-${Date.now()}.sock`);
  const server = net.createServer((s) => {
    track(s);
    s.on('error', () => {});
  });
  server.listen(file);
  await once(server, 'listening');
  t.after(() => {
    server.close();
    fs.rmSync(file, { force: true });
  });
  return { file, server };
}

test('[A-5] TCP streams pass, connected or connecting; so does one whose handle class is renamed', async () => {
  const { local, remote } = await tcpPair();
  assert.equal(isTcpStream(local), undefined);
  assert.equal(isTcpStream(remote), undefined, 'an accepted socket');
  const port = (remote.address() as net.AddressInfo).port;
  const connecting = track(net.connect({ port, host: '127.0.0.1' }));
  assert.equal(connecting.connecting, true);
  assert.equal(isTcpStream(connecting), undefined, '[X-7] still connecting');
  // Nothing rests on Node's internal names: a handle whose class is called otherwise is still TCP.
  const handle = (local as unknown as { _handle: object })._handle;
  Object.defineProperty(handle, 'constructor', { value: class SomethingElse {}, configurable: true });
  assert.equal(isTcpStream(local), undefined);
});

test('[A-5][A-6] a UNIX-domain stream, a never-connected and a destroyed socket are refused, each saying why', async (t) => {
  const { file } = await unixServer(t);
  const unix = track(net.connect(file));
  await once(unix, 'connect');
  assert.match(isTcpStream(unix) ?? '', /local \(UNIX domain\) stream, not TCP/);
  const fresh = new net.Socket();
  assert.match(isTcpStream(fresh) ?? '', /not connected/);
  fresh.destroy();
  assert.match(isTcpStream(fresh) ?? '', /destroyed/);
});

test('[A-5][X-7] a UNIX-domain stream attached while connecting fails EOPNOTSUPP when it connects and carries nothing', async (t) => {
  const { file, server } = await unixServer(t);
  const arrived: Buffer[] = [];
  server.on('connection', (s: net.Socket) => s.on('data', (c: Buffer) => arrived.push(c)));
  const unix = track(net.connect(file));
  assert.equal(unix.connecting, true);
  const sock = KcmSocket.create();
  try {
    const psock = sock.attach(unix, { parser: P4 });
    const sending = sock.send(frame('not over a pipe'));
    const err = await psockError(psock);
    assert.equal(err.code, 'EOPNOTSUPP');
    assert.match(err.message, /UNIX domain/);
    await sending;
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(arrived, [], 'no byte went over the UNIX stream');
    assert.equal(psock.stats().txMsgs, 0);
  } finally {
    sock.close();
  }
});
