import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { KcmSocket } from '../../src/index.js';
import type { KcmError } from '../../src/errors.js';
import { channelNames, type MuxMessage, type PsockErrorMessage, type PsockMessage, type PsockUnattachMessage } from '../../src/diagnostics.js';
import { P4, frame, tcpPairs, closeAll, waitFor } from '../helpers/loopback.js';

test('channels report create, attach, psock error, unattach and destroy in order', async () => {
  const seen: string[] = [];
  const messages: Record<string, unknown[]> = {};
  const subs: [string, (m: unknown) => void][] = [];
  for (const name of Object.values(channelNames)) {
    const fn = (m: unknown): void => {
      seen.push(name);
      (messages[name] ??= []).push(m);
    };
    diagnosticsChannel.subscribe(name, fn);
    subs.push([name, fn]);
  }
  try {
    const sock = KcmSocket.create();
    const create = messages['kcm:mux:create']![0] as MuxMessage;
    assert.equal(create.mux, sock.mux);
    assert.equal(typeof create.muxId, 'number');
    const [a, b] = await tcpPairs(2);
    const pa = sock.attach(a!.local, { parser: P4, maxMessageSize: 64 });
    const attach = messages['kcm:psock:attach']![0] as PsockMessage;
    assert.equal(attach.psock, pa);
    assert.equal(attach.transport, a!.local);
    assert.equal(attach.muxId, create.muxId);

    // A psock error is published before the psock's own 'error' event.
    pa.on('error', (err: KcmError) => seen.push(`error event ${err.code}`));
    a!.remote.write(frame(Buffer.alloc(100)));
    await waitFor(() => seen.includes('error event EMSGSIZE'), 10000, 'psock error');
    const error = messages['kcm:psock:error']![0] as PsockErrorMessage;
    assert.equal(error.psock, pa);
    assert.equal(error.error.code, 'EMSGSIZE');
    assert.ok(seen.indexOf('kcm:psock:error') < seen.indexOf('error event EMSGSIZE'));

    sock.unattach(a!.local);
    const unattach = messages['kcm:psock:unattach']![0] as PsockUnattachMessage;
    assert.equal(unattach.psock, pa);
    assert.equal(unattach.reserved, false);

    const pb = sock.attach(b!.local, { parser: P4 });
    const clone = sock.clone();
    sock.close();
    assert.equal(messages['kcm:mux:destroy'], undefined, 'not destroyed while a clone is open');
    clone.close();
    assert.equal((messages['kcm:psock:unattach']![1] as PsockUnattachMessage).psock, pb);
    assert.equal((messages['kcm:mux:destroy']![0] as MuxMessage).mux, sock.mux);
    assert.deepEqual(seen, [
      'kcm:mux:create',
      'kcm:psock:attach',
      'kcm:psock:error',
      'error event EMSGSIZE',
      'kcm:psock:unattach',
      'kcm:psock:attach',
      'kcm:psock:unattach',
      'kcm:mux:destroy',
    ]);
  } finally {
    for (const [name, fn] of subs) diagnosticsChannel.unsubscribe(name, fn);
    await closeAll();
  }
});

test('nothing is published to a channel without subscribers', async () => {
  const ch = diagnosticsChannel.channel(channelNames.psockAttach);
  assert.equal(ch.hasSubscribers, false);
  const sock = KcmSocket.create();
  const [p] = await tcpPairs(1);
  let got = 0;
  const fn = (): void => void got++;
  sock.attach(p!.local, { parser: P4 });
  diagnosticsChannel.subscribe(channelNames.psockUnattach, fn);
  sock.unattach(p!.local);
  diagnosticsChannel.unsubscribe(channelNames.psockUnattach, fn);
  sock.close();
  assert.equal(got, 1);
  await closeAll();
});

const script = `
import * as net from 'node:net';
import { once } from 'node:events';
const { KcmSocket, lengthField } = await import(process.argv[1]);
const server = net.createServer().listen(0, '127.0.0.1');
await once(server, 'listening');
const c = net.connect(server.address().port, '127.0.0.1');
const [peer] = await once(server, 'connection');
await once(c, 'connect');
const sock = KcmSocket.create();
const psock = sock.attach(c, { parser: lengthField({ size: 4, adjust: 4 }), maxMessageSize: 10 });
psock.on('error', () => {});
const failed = once(psock, 'error');
peer.write(Buffer.from([0, 0, 1, 0]));
await failed;
sock.unattach(c);
sock.close();
c.destroy(); peer.destroy(); server.close();
`;

function runWith(env: NodeJS.ProcessEnv): string {
  const index = fileURLToPath(new URL('../../src/index.js', import.meta.url));
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, index], { env, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}

test('NODE_DEBUG=kcm logs the same points; silent otherwise', () => {
  const env = { ...process.env };
  delete env.NODE_DEBUG;
  const on = runWith({ ...env, NODE_DEBUG: 'kcm' });
  const lines = on.split('\n').filter((l) => l.startsWith('KCM '));
  assert.match(lines[0]!, /^KCM \d+: mux-\d+ created$/);
  assert.match(lines[1]!, /^KCM \d+: mux-\d+ psock-0 attached 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+$/);
  assert.match(lines[2]!, /^KCM \d+: mux-\d+ psock-0 error EMSGSIZE: /);
  assert.match(lines[3]!, /^KCM \d+: mux-\d+ psock-0 unattached$/);
  assert.match(lines[4]!, /^KCM \d+: mux-\d+ destroyed$/);
  assert.equal(lines.length, 5);
  const off = runWith(env);
  assert.doesNotMatch(off, /KCM \d+:/);
});
