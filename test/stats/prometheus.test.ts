import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import type { MuxStats } from '../../src/mux/multiplexor.js';
import { formatPrometheus } from '../../src/stats/prometheus.js';
import { P4, frame, tcpPairs, closeAll, FrameReader, waitFor } from '../helpers/loopback.js';

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)\})? (-?\d+(?:\.\d+)?)$/;

/** Parses the text format strictly: HELP then TYPE before a family's samples, names unique. */
function parse(text: string): { types: Map<string, string>; samples: Map<string, number> } {
  assert.ok(text.endsWith('\n'));
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  let help: string | undefined;
  let current: string | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpMatchArray | null;
    if ((m = /^# HELP (\S+) (.+)$/.exec(line)) !== null) {
      assert.ok(!types.has(m[1]!), `family ${m[1]} declared twice`);
      help = m[1];
    } else if ((m = /^# TYPE (\S+) (counter|gauge)$/.exec(line)) !== null) {
      assert.equal(m[1], help, `TYPE of ${m[1]} follows its HELP`);
      types.set(m[1]!, m[2]!);
      current = m[1];
      if (m[2] === 'counter') assert.match(m[1]!, /_total$/);
    } else {
      m = SAMPLE.exec(line);
      assert.ok(m !== null, `bad sample line: ${line}`);
      assert.equal(m[1], current, `sample ${m[1]} under its family`);
      const key = m[2] === undefined ? m[1]! : `${m[1]}${m[2]}`;
      assert.ok(!samples.has(key), `duplicate sample ${key}`);
      samples.set(key, Number(m[4]));
    }
  }
  return { types, samples };
}

test('formats a live multiplexor: every counter, labelled by socket and psock index', async () => {
  const sock = KcmSocket.create();
  const clone = sock.clone();
  try {
    const [a, b] = await tcpPairs(2);
    sock.attach(a!.local, { parser: P4 });
    sock.attach(b!.local, { parser: P4 });
    const readers = [new FrameReader(a!.remote), new FrameReader(b!.remote)];
    for (let i = 0; i < 5; i++) await sock.send(frame(`k0-${i}`));
    for (let i = 0; i < 3; i++) await clone.send(frame(`k1-${i}`));
    a!.remote.write(Buffer.concat([frame('x'), frame('yy')]));
    await waitFor(() => readers[0]!.frames.length + readers[1]!.frames.length === 8, 10000, '8 frames');
    await waitFor(() => sock.mux.stats().rxMsgs === 2, 10000, '2 messages received');
    assert.ok((sock.tryReceive() ?? clone.tryReceive()) !== undefined);
    const stats = sock.mux.stats();
    const { types, samples } = parse(formatPrometheus(sock.mux));
    assert.equal(types.get('kcm_mux_rx_messages_total'), 'counter');
    assert.equal(types.get('kcm_mux_psocks'), 'gauge');
    assert.equal(samples.get('kcm_mux_tx_messages_total'), stats.txMsgs);
    assert.equal(samples.get('kcm_mux_tx_messages_total'), 8);
    assert.equal(samples.get('kcm_mux_rx_messages_total'), 2);
    assert.equal(samples.get('kcm_mux_psock_attach_total'), 2);
    assert.equal(samples.get('kcm_mux_sockets'), 2);
    assert.equal(samples.get('kcm_socket_tx_messages_total{socket="0"}'), 5);
    assert.equal(samples.get('kcm_socket_tx_messages_total{socket="1"}'), 3);
    assert.equal(samples.get('kcm_socket_tx_bytes_total{socket="1"}'), clone.stats().txBytes);
    const rxRead = samples.get('kcm_socket_rx_messages_total{socket="0"}')! + samples.get('kcm_socket_rx_messages_total{socket="1"}')!;
    assert.equal(rxRead, 1);
    for (const p of stats.psocks) {
      assert.equal(samples.get(`kcm_psock_tx_messages_total{psock="${p.index}"}`), p.txMsgs);
      assert.equal(samples.get(`kcm_psock_rx_bytes_total{psock="${p.index}"}`), p.rxBytes);
      assert.equal(samples.get(`kcm_psock_tx_stopped{psock="${p.index}"}`), 0);
    }
    assert.equal(samples.get('kcm_psock_rx_messages_total{psock="0"}'), 2);
    // Every counter and psock field of the stats appears.
    assert.equal([...types.keys()].filter((n) => n.startsWith("kcm_psock_") && n.endsWith("_total")).length, 18);
  } finally {
    clone.close();
    sock.close();
    await closeAll();
  }
});

function fake(rxMsgs: number): MuxStats {
  return {
    rxMsgs, rxBytes: 10, txMsgs: 0, txBytes: 0, txRetries: 0, txDropped: 0, rxReadyDrops: 0, psockAttach: 1, psockUnattach: 0,
    psockUnattachRsvd: 0, rxHoldQueued: 0, sockets: [], psocks: [],
  };
}

test('stats objects, several multiplexors, prefix and constant labels', () => {
  const one = formatPrometheus(fake(7), { prefix: 'app_kcm' });
  assert.match(one, /^# HELP app_kcm_mux_rx_messages_total .+\n# TYPE app_kcm_mux_rx_messages_total counter\napp_kcm_mux_rx_messages_total 7\n/);
  const { samples } = parse(formatPrometheus([fake(1), fake(2)], { labels: { service: 'a "b"\\c\nd' } }));
  assert.equal(samples.get('kcm_mux_rx_messages_total{service="a \\"b\\"\\\\c\\nd",mux="0"}'), 1);
  assert.equal(samples.get('kcm_mux_rx_messages_total{service="a \\"b\\"\\\\c\\nd",mux="1"}'), 2);
});

test('formatter argument errors', () => {
  assert.throws(() => formatPrometheus({} as MuxStats), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => formatPrometheus(fake(0), { prefix: '1bad' }), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => formatPrometheus(fake(0), { labels: { 'bad-name': 'x' } }), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => formatPrometheus(fake(0), { labels: { ok: 1 as unknown as string } }), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('formats a connector: totals, and per-endpoint series labelled endpoint and name', () => {
  const endpoint = (key: string, name: string, connected: number) => ({
    endpoint: key, host: key.split(':')[0]!, port: Number(key.split(':')[1]), name, weight: 1, priority: 0,
    connections: 2, connected, draining: 0, connects: 3, disconnects: 1, connectFailures: 0, replaced: 0, txMsgs: 10, rxMsgs: 9, listed: true,
  });
  const stats = {
    connections: 4, connected: 3, connects: 6, disconnects: 1, connectFailures: 0, reconnects: 1, failures: 0, failing: false,
    resolutions: 5, resolveFailures: 1, drained: 0, replaced: 0,
    endpoints: [endpoint('10.0.0.1:9090', 'a.svc', 2), endpoint('10.0.0.2:9090', 'b "quoted"', 1)],
  };
  const { types, samples } = parse(formatPrometheus({ stats: () => stats }));
  assert.equal(types.get('kcm_connector_connected'), 'gauge');
  assert.equal(types.get('kcm_connector_endpoint_connects_total'), 'counter');
  assert.equal(samples.get('kcm_connector_connected'), 3);
  assert.equal(samples.get('kcm_connector_resolve_failures_total'), 1);
  assert.equal(samples.get('kcm_connector_endpoint_connected{endpoint="10.0.0.1:9090",name="a.svc"}'), 2);
  assert.equal(samples.get('kcm_connector_endpoint_connected{endpoint="10.0.0.2:9090",name="b \\"quoted\\""}'), 1);
  assert.equal(samples.get('kcm_connector_endpoint_tx_messages_total{endpoint="10.0.0.1:9090",name="a.svc"}'), 10);
  assert.ok(![...types.keys()].some((k) => k.startsWith('kcm_mux_')), 'no multiplexor families without a multiplexor');
  // Mixed with a multiplexor: both, each labelled by its position.
  const sock = KcmSocket.create();
  try {
    const both = parse(formatPrometheus([sock.mux, { stats: () => stats }]));
    assert.equal(both.samples.get('kcm_connector_connected{connector="0"}'), 3);
    assert.ok(both.samples.has('kcm_mux_rx_messages_total{mux="0"}'));
  } finally {
    sock.close();
  }
});
