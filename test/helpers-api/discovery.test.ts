import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import { Requester } from '../../src/helpers/requester.js';
import type { KcmConnector, EndpointStats } from '../../src/helpers/kcm-connector.js';
import { formatPrometheus } from '../../src/stats/prometheus.js';
import { Dnsmasq, dnsmasqSkip, type SrvRecord } from '../helpers/dnsmasq.js';
import { IdServer, idRequest, replyId, replyTag } from '../helpers/id-server.js';
import { P4, waitFor, sleep } from '../helpers/loopback.js';

const skip = dnsmasqSkip();
const SRV = '_kcm._tcp.kcm.test';

/** A client: `n` sockets on one multiplexor and a Requester over them. */
function client(n: number): { sockets: KcmSocket[]; requester: Requester } {
  const first = KcmSocket.create();
  const sockets = [first];
  for (let i = 1; i < n; i++) sockets.push(first.clone());
  return { sockets, requester: new Requester(sockets, { id: replyId, timeout: 20_000 }) };
}

function byKey(stats: EndpointStats[]): Map<string, EndpointStats> {
  return new Map(stats.map((e) => [e.endpoint, e]));
}

/**
 * Keeps `concurrency` requests in flight until `stop()`; every reply is checked against
 * its id and the tag of the server that answered is counted per request.
 */
function load(requester: Requester, concurrency: number): { stop: () => Promise<void>; answered: Map<number, number>; tags: number[]; next: () => number } {
  let id = 0;
  let running = true;
  const answered = new Map<number, number>();
  const tags: number[] = [];
  const loops: Promise<void>[] = [];
  for (let c = 0; c < concurrency; c++) {
    loops.push(
      (async () => {
        for (let i = 0; i < 1_000_000 && running; i++) {
          const my = id++;
          const reply = await requester.request(idRequest(my), my);
          assert.equal(replyId(reply), my);
          answered.set(my, (answered.get(my) ?? 0) + 1);
          tags[my] = replyTag(reply);
        }
      })(),
    );
  }
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
    answered,
    tags,
    next: () => id,
  };
}

/** `n` servers tagged 1..n on 127.0.0.2.., named s1.kcm.test.., and an SRV record each. */
async function srvServers(n: number): Promise<{ servers: IdServer[]; hosts: Record<string, string[]>; records: SrvRecord[] }> {
  const servers = await Promise.all(Array.from({ length: n }, (_, i) => IdServer.start(`127.0.0.${i + 2}`, i + 1)));
  const hosts: Record<string, string[]> = {};
  for (let i = 0; i < n; i++) hosts[`s${i + 1}.kcm.test`] = [`127.0.0.${i + 2}`];
  const records = servers.map((s, i) => ({ name: SRV, target: `s${i + 1}.kcm.test`, port: s.port, priority: 0, weight: 1 }));
  return { servers, hosts, records };
}

/** Stops a client and what it talked to. */
async function closeAll(requester: Requester, connector: KcmConnector, sockets: KcmSocket[], servers: IdServer[], dns?: Dnsmasq): Promise<void> {
  requester.close();
  await connector.close();
  for (const s of sockets) s.close();
  await Promise.all(servers.map((s) => s.close()));
  await dns?.stop();
}

/** Every request of `traffic` answered once, and handled once over all `servers`. */
function assertExactlyOnce(traffic: ReturnType<typeof load>, servers: IdServer[]): void {
  const total = traffic.next();
  assert.equal(traffic.answered.size, total);
  for (const n of traffic.answered.values()) assert.equal(n, 1);
  for (let id = 0; id < total; id++) {
    const seen = servers.reduce((n, s) => n + (s.requests.get(id) ?? 0), 0);
    assert.equal(seen, 1, `request ${id} handled ${seen} times`);
  }
}

test('srv: connections are spread by SRV weight over the lowest priority', { skip }, async () => {
  const servers = await Promise.all([IdServer.start('127.0.0.2', 1), IdServer.start('127.0.0.3', 2), IdServer.start('127.0.0.4', 3), IdServer.start('127.0.0.5', 4)]);
  const dns = await Dnsmasq.start(
    { 's1.kcm.test': ['127.0.0.2'], 's2.kcm.test': ['127.0.0.3'], 's3.kcm.test': ['127.0.0.4'], 'backup.kcm.test': ['127.0.0.5'] },
    [
      { name: SRV, target: 's1.kcm.test', port: servers[0]!.port, priority: 10, weight: 10 },
      { name: SRV, target: 's2.kcm.test', port: servers[1]!.port, priority: 10, weight: 20 },
      { name: SRV, target: 's3.kcm.test', port: servers[2]!.port, priority: 10, weight: 30 },
      { name: SRV, target: 'backup.kcm.test', port: servers[3]!.port, priority: 20, weight: 100 },
    ],
  );
  const { sockets, requester } = client(2);
  const connector = sockets[0]!.connect({ endpoints: `srv:${SRV}`, connections: 2, parser: P4, resolver: dns.resolver() });
  try {
    // 3 endpoints x 2 = 6 connections, shared 10:20:30 -> 1, 2, 3; the backup gets none.
    await waitFor(() => connector.connected === 6 && servers.reduce((n, s) => n + s.connections, 0) === 6, 10000, '6 connections');
    assert.deepEqual(servers.map((s) => s.connections), [1, 2, 3, 0]);
    const eps = byKey(connector.stats().endpoints);
    assert.equal(eps.get(`127.0.0.2:${servers[0]!.port}`)!.connections, 1);
    assert.equal(eps.get(`127.0.0.4:${servers[2]!.port}`)!.name, 's3.kcm.test');
    assert.equal(eps.get(`127.0.0.4:${servers[2]!.port}`)!.weight, 30);
    assert.equal(connector.stats().endpoints.length, 4, 'the backup is known but idle');
    assert.equal(eps.get(`127.0.0.5:${servers[3]!.port}`)!.connections, 0);
    // Traffic follows the connections.
    const calls = [];
    for (let i = 0; i < 600; i++) calls.push(requester.request(idRequest(i), i));
    await Promise.all(calls);
    assert.equal(servers[3]!.handled, 0);
    assert.ok(servers[2]!.handled > servers[0]!.handled, `weight 30 took more than weight 10: ${servers.map((s) => s.handled)}`);
    // Per-endpoint labels reach Prometheus.
    const text = formatPrometheus(connector);
    assert.match(text, new RegExp(`kcm_connector_endpoint_connected\\{endpoint="127\\.0\\.0\\.4:${servers[2]!.port}",name="s3\\.kcm\\.test"\\} 3`));
  } finally {
    await closeAll(requester, connector, sockets, servers, dns);
  }
});

test('[U-2] srv: a record removed and its server stopped: all traffic moves to the others, no request lost or duplicated', { skip }, async () => {
  const { servers, hosts, records } = await srvServers(3);
  const dns = await Dnsmasq.start(hosts, records);
  const { sockets, requester } = client(2);
  const connector = sockets[0]!.connect({ endpoints: `srv:${SRV}`, connections: 2, parser: P4, resolver: dns.resolver(), refreshInterval: 300, closeTimeout: 3000 });
  const drains: string[] = [];
  connector.on('drain', (e) => drains.push(`${e.endpoint.name} ${e.reason}`));
  try {
    await waitFor(() => connector.connected === 6, 10000, '6 connections');
    const traffic = load(requester, 32);
    await waitFor(() => servers[2]!.handled > 200, 10000, 'traffic on s3');
    // s3 leaves the records: its connections drain, then the server stops.
    await dns.restart(records.slice(0, 2));
    await waitFor(() => !connector.stats().endpoints.some((e) => e.name === 's3.kcm.test'), 10000, 's3 drained and forgotten');
    assert.deepEqual(drains, ['s3.kcm.test removed', 's3.kcm.test removed']);
    await servers[2]!.close();
    const cut = traffic.next();
    await sleep(300);
    await traffic.stop();
    // Every request answered exactly once, and handled exactly once by the servers.
    const total = traffic.next();
    assert.ok(total > cut + 50, `requests went on after the cut: ${total - cut}`);
    assertExactlyOnce(traffic, servers);
    for (let id = cut; id < total; id++) assert.notEqual(traffic.tags[id], 3, `request ${id} after the cut went to s3`);
    assert.equal(requester.stats().unmatched, 0);
    assert.equal(connector.connected, 4);
  } finally {
    await closeAll(requester, connector, sockets, servers, dns);
  }
});

test('srv: a new SRV record (dnsmasq restarted) brings a new server into rotation within refreshInterval', { skip }, async () => {
  const { servers, hosts, records } = await srvServers(3);
  const dns = await Dnsmasq.start(hosts, records.slice(0, 2));
  const { sockets, requester } = client(1);
  const REFRESH = 500;
  const connector = sockets[0]!.connect({ endpoints: `srv:${SRV}`, parser: P4, resolver: dns.resolver(), refreshInterval: REFRESH });
  try {
    await waitFor(() => connector.connected === 2 && servers[0]!.connections + servers[1]!.connections === 2, 10000, '2 connections');
    assert.equal(servers[2]!.connections, 0);
    await dns.restart(records);
    const t0 = performance.now();
    await waitFor(() => servers[2]!.connections === 1, 10000, 'a connection to the new server');
    const took = performance.now() - t0;
    assert.ok(took <= REFRESH + 1000, `the new server got its connection after ${took.toFixed(0)} ms`);
    const calls = [];
    for (let i = 0; i < 300; i++) calls.push(requester.request(idRequest(i), i));
    await Promise.all(calls);
    assert.ok(servers.every((s) => s.handled > 0), `every server takes traffic: ${servers.map((s) => s.handled)}`);
  } finally {
    await closeAll(requester, connector, sockets, servers, dns);
  }
});

test('dns: a new A record (addn-hosts + SIGHUP) brings a new server into rotation within refreshInterval; a removed one drains', { skip }, async () => {
  const a = await IdServer.start('127.0.0.2', 1);
  const b = await IdServer.start('127.0.0.3', 2, a.port);
  const c = await IdServer.start('127.0.0.4', 3, a.port);
  const dns = await Dnsmasq.start({ 'svc.kcm.test': ['127.0.0.2', '127.0.0.3'] });
  const { sockets, requester } = client(1);
  const REFRESH = 500;
  const connector = sockets[0]!.connect({ endpoints: `dns:svc.kcm.test:${a.port}`, connections: 2, parser: P4, resolver: dns.resolver(), refreshInterval: REFRESH });
  const events: string[] = [];
  connector.on('endpoints', (e) => events.push(`+${e.added.map((x: { host: string }) => x.host).join(',')} -${e.removed.map((x: { host: string }) => x.host).join(',')}`));
  try {
    await waitFor(() => connector.connected === 4 && a.connections + b.connections === 4, 10000, '4 connections');
    assert.deepEqual([a.connections, b.connections, c.connections], [2, 2, 0]);
    dns.writeHosts({ 'svc.kcm.test': ['127.0.0.2', '127.0.0.3', '127.0.0.4'] });
    dns.reload();
    const t0 = performance.now();
    await waitFor(() => c.connections === 2, 10000, 'connections to the new server');
    const took = performance.now() - t0;
    assert.ok(took <= REFRESH + 1000, `the new server got connections after ${took.toFixed(0)} ms`);
    const calls = [];
    for (let i = 0; i < 300; i++) calls.push(requester.request(idRequest(i), i));
    await Promise.all(calls);
    assert.ok(c.handled > 0, 'the new server takes traffic');

    dns.writeHosts({ 'svc.kcm.test': ['127.0.0.2', '127.0.0.4'] });
    dns.reload();
    await waitFor(() => b.connections === 0, 10000, 'the removed server drained');
    const before = b.handled;
    for (let i = 300; i < 600; i++) await requester.request(idRequest(i), i);
    assert.equal(b.handled, before);
    assert.equal(connector.connected, 4);
    assert.deepEqual(events, ['+127.0.0.2,127.0.0.3 -', '+127.0.0.4 -', '+ -127.0.0.3']);
    assert.ok(connector.stats().resolutions >= 3);
  } finally {
    await closeAll(requester, connector, sockets, [a, b, c], dns);
  }
});

test('dns: resolver errors keep the endpoints known and retry with backoff; the server coming back resolves again', { skip }, async () => {
  const a = await IdServer.start('127.0.0.2', 1);
  const dns = await Dnsmasq.start({ 'svc.kcm.test': ['127.0.0.2'] });
  const sock = KcmSocket.create();
  const connector = sock.connect({ endpoints: `dns:svc.kcm.test:${a.port}`, parser: P4, resolver: dns.resolver(), refreshInterval: 200, backoff: { initial: 50, max: 200 } });
  const errors: string[] = [];
  connector.on('error', (err: { code: string }, slot: number) => {
    if (slot === -1) errors.push(err.code);
  });
  try {
    await waitFor(() => connector.connected === 1, 10000, 'connected');
    // The DNS server stops answering for a while: resolutions fail, the connection stays.
    await dns.halt();
    await waitFor(() => connector.stats().resolveFailures >= 2, 10000, 'failed resolutions');
    assert.equal(connector.connected, 1);
    assert.equal(a.connections, 1);
    assert.ok(errors.length >= 2);
    await dns.restart([]);
    const failures = connector.stats().resolveFailures;
    await sleep(600);
    assert.ok(connector.stats().resolveFailures <= failures + 1, 'resolutions succeed again');
  } finally {
    await connector.close();
    sock.close();
    await a.close();
    await dns.stop();
  }
});

test('maxConnectionAge under load: connections replaced one at a time, zero requests lost', async () => {
  const server = await IdServer.start('127.0.0.1', 1);
  const { sockets, requester } = client(4);
  const connector: KcmConnector = sockets[0]!.connect({ host: '127.0.0.1', port: server.port, connections: 4, parser: P4, maxConnectionAge: 300, closeTimeout: 3000 });
  let most = 0;
  const check = setInterval(() => {
    // One replacement at a time: never more than one extra connection up.
    most = Math.max(most, server.connections);
  }, 5);
  try {
    await waitFor(() => connector.connected === 4, 10000, '4 connections');
    const traffic = load(requester, 64);
    await waitFor(() => connector.stats().replaced >= 8, 20000, '8 replacements');
    await traffic.stop();
    assertExactlyOnce(traffic, [server]);
    const s = requester.stats();
    assert.equal(s.failures + s.timeouts + s.unmatched, 0);
    assert.ok(connector.stats().drained >= 4);
    assert.equal(connector.stats().disconnects, 0, 'no connection failed');
    // One replacement at a time: 4 and the new one; the server may not yet have seen the
    // close of the connection drained just before.
    assert.ok(most <= 4 + 2, `one replacement at a time: ${most} connections seen`);
  } finally {
    clearInterval(check);
    requester.close();
    await connector.close();
    for (const s of sockets) s.close();
    await server.close();
  }
});

test('endpoints: a fixed list with weights, argument errors', async () => {
  const a = await IdServer.start('127.0.0.1', 1);
  const b = await IdServer.start('127.0.0.1', 2);
  const sock = KcmSocket.create();
  const connector = sock.connect({ endpoints: [{ host: '127.0.0.1', port: a.port, weight: 1 }, { host: '127.0.0.1', port: b.port, weight: 3 }], connections: 2, parser: P4 });
  try {
    await waitFor(() => connector.connected === 4 && a.connections + b.connections === 4, 10000, '4 connections');
    assert.deepEqual([a.connections, b.connections], [1, 3]);
    const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c;
    const other = KcmSocket.create();
    assert.throws(() => other.connect({ endpoints: 'http://x', parser: P4 }), code('ERR_INVALID_ARG_VALUE'));
    assert.throws(() => other.connect({ endpoints: 'dns:name', parser: P4 }), code('ERR_INVALID_ARG_VALUE'));
    assert.throws(() => other.connect({ endpoints: 'dns:name:99999', parser: P4 }), code('ERR_INVALID_ARG_VALUE'));
    assert.throws(() => other.connect({ endpoints: [], parser: P4 }), code('ERR_INVALID_ARG_VALUE'));
    assert.throws(() => other.connect({ endpoints: [{ host: 'x', port: -1 }], parser: P4 }), code('ERR_OUT_OF_RANGE'));
    assert.throws(() => other.connect({ endpoints: 5 as unknown as string, parser: P4 }), code('ERR_INVALID_ARG_TYPE'));
    assert.throws(() => other.connect({ endpoints: 'srv:x', parser: P4, resolver: {} as never }), code('ERR_INVALID_ARG_TYPE'));
    assert.throws(() => other.connect({ host: 'x', port: 1, parser: P4, maxConnectionAge: 0 }), code('ERR_OUT_OF_RANGE'));
    other.close();
  } finally {
    await connector.close();
    sock.close();
    await Promise.all([a.close(), b.close()]);
  }
});
