/**
 * The Prometheus text exposition format (version 0.0.4) for `mux.stats()`, with no
 * dependency: serve it from any HTTP handler with
 * `Content-Type: text/plain; version=0.0.4`.
 *
 * ```
 * # HELP kcm_mux_rx_messages_total Messages received on the multiplexor's psocks (KCM_STATS rx_msgs).
 * # TYPE kcm_mux_rx_messages_total counter
 * kcm_mux_rx_messages_total 1042
 * # HELP kcm_psock_rx_messages_total Messages received on the psock (rx_msgs).
 * # TYPE kcm_psock_rx_messages_total counter
 * kcm_psock_rx_messages_total{psock="0"} 520
 * kcm_psock_rx_messages_total{psock="1"} 522
 * ```
 *
 * Socket and psock series are labelled by index (`socket="N"`, `psock="N"`). Indices are
 * reused after a close or an unattach [O-2], so a series may restart from zero, which
 * Prometheus reads as a counter reset; the `kcm_mux_*` counters include unattached
 * psocks [ST-4] and never go back.
 */
import { invalidArgType, invalidArgValue } from '../errors.js';
import type { MuxStats, KcmSocketMuxStats } from '../mux/multiplexor.js';
import type { PsockStats } from '../mux/psock.js';
import type { KcmConnectorStats, EndpointStats } from '../helpers/kcm-connector.js';

/** Options of {@link formatPrometheus}. */
export interface PrometheusOptions {
  /** Metric name prefix; default `'kcm'`. */
  prefix?: string;
  /** Labels added to every sample, such as `{ service: 'rpc' }`. */
  labels?: Readonly<Record<string, string>>;
}

/** Something with `stats()`: a multiplexor, or a connector (its series are labelled by endpoint). */
export interface StatsSource {
  stats(): MuxStats | KcmConnectorStats;
}

type Kind = 'counter' | 'gauge';
type Value = number | boolean;

interface Family<T> {
  name: string;
  kind: Kind;
  help: string;
  value: (s: T) => Value;
}

const muxFamilies: Family<MuxStats>[] = [
  { name: 'mux_rx_messages_total', kind: 'counter', help: 'Messages received on the multiplexor\'s psocks (KCM_STATS rx_msgs).', value: (s) => s.rxMsgs },
  { name: 'mux_rx_bytes_total', kind: 'counter', help: 'Bytes of messages received on the multiplexor\'s psocks (rx_bytes).', value: (s) => s.rxBytes },
  { name: 'mux_tx_messages_total', kind: 'counter', help: 'Messages sent on the multiplexor\'s psocks (tx_msgs).', value: (s) => s.txMsgs },
  { name: 'mux_tx_bytes_total', kind: 'counter', help: 'Bytes sent on the multiplexor\'s psocks (tx_bytes).', value: (s) => s.txBytes },
  { name: 'mux_tx_retries_total', kind: 'counter', help: 'Messages restarted on another psock after a transport failure (tx_retries).', value: (s) => s.txRetries },
  { name: 'mux_tx_dropped_total', kind: 'counter', help: 'Pinned messages dropped because their psock failed or was unattached first (beyond Linux, K-6).', value: (s) => s.txDropped },
  { name: 'mux_rx_ready_drops_total', kind: 'counter', help: 'Held messages dropped when their psock was unattached (rx_ready_drops).', value: (s) => s.rxReadyDrops },
  { name: 'mux_psock_attach_total', kind: 'counter', help: 'Transports attached (psock_attach, SIOCKCMATTACH).', value: (s) => s.psockAttach },
  { name: 'mux_psock_unattach_total', kind: 'counter', help: 'Psocks unattached (psock_unattach, SIOCKCMUNATTACH).', value: (s) => s.psockUnattach },
  { name: 'mux_psock_unattach_reserved_total', kind: 'counter', help: 'Psocks unattached while reserved for transmit (psock_unattach_rsvd).', value: (s) => s.psockUnattachRsvd },
  { name: 'mux_sockets', kind: 'gauge', help: 'Open KCM sockets of the multiplexor.', value: (s) => s.sockets.length },
  { name: 'mux_psocks', kind: 'gauge', help: 'Attached psocks of the multiplexor.', value: (s) => s.psocks.length },
  { name: 'mux_rx_hold_queued_messages', kind: 'gauge', help: 'Received messages waiting in the hold queue for an enabled socket.', value: (s) => s.rxHoldQueued },
];

const socketFamilies: Family<KcmSocketMuxStats>[] = [
  { name: 'socket_rx_messages_total', kind: 'counter', help: 'Messages read from the KCM socket (rx_msgs).', value: (s) => s.rxMsgs },
  { name: 'socket_rx_bytes_total', kind: 'counter', help: 'Bytes read from the KCM socket (rx_bytes).', value: (s) => s.rxBytes },
  { name: 'socket_tx_messages_total', kind: 'counter', help: 'Messages sent through the KCM socket (tx_msgs).', value: (s) => s.txMsgs },
  { name: 'socket_tx_bytes_total', kind: 'counter', help: 'Bytes sent through the KCM socket (tx_bytes).', value: (s) => s.txBytes },
  { name: 'socket_tx_dropped_total', kind: 'counter', help: 'Pinned messages of the socket dropped because their psock was done first (K-6).', value: (s) => s.txDropped },
  { name: 'socket_rx_queued_messages', kind: 'gauge', help: 'Messages waiting to be read (Recv-Q).', value: (s) => s.rxQueued },
  { name: 'socket_rx_queued_bytes', kind: 'gauge', help: 'Bytes of messages waiting to be read (Rmem).', value: (s) => s.rxQueuedBytes },
  { name: 'socket_tx_queued_messages', kind: 'gauge', help: 'Messages queued for transmit (Send-Q).', value: (s) => s.txQueued },
  { name: 'socket_tx_queued_bytes', kind: 'gauge', help: 'Bytes queued or open for transmit (Smem).', value: (s) => s.txQueuedBytes },
  { name: 'socket_tx_waiting', kind: 'gauge', help: '1 while the socket waits for a psock to transmit (TxWait).', value: (s) => s.txWait },
  { name: 'socket_rx_disabled', kind: 'gauge', help: '1 while receive is disabled (KCM_RECV_DISABLE).', value: (s) => s.rxDisabled },
];

const psockFamilies: Family<PsockStats>[] = [
  { name: 'psock_rx_messages_total', kind: 'counter', help: 'Messages received on the psock (rx_msgs).', value: (s) => s.rxMsgs },
  { name: 'psock_rx_bytes_total', kind: 'counter', help: 'Bytes of messages received on the psock (rx_bytes).', value: (s) => s.rxBytes },
  { name: 'psock_tx_messages_total', kind: 'counter', help: 'Messages sent on the psock (tx_msgs).', value: (s) => s.txMsgs },
  { name: 'psock_tx_bytes_total', kind: 'counter', help: 'Bytes sent on the psock (tx_bytes).', value: (s) => s.txBytes },
  { name: 'psock_reserved_total', kind: 'counter', help: 'Times a KCM socket reserved the psock for transmit (reserved).', value: (s) => s.reserved },
  { name: 'psock_unreserved_total', kind: 'counter', help: 'Times the psock was released after transmit (unreserved).', value: (s) => s.unreserved },
  { name: 'psock_tx_aborts_total', kind: 'counter', help: 'Transmit aborts of the psock (tx_aborts).', value: (s) => s.txAborts },
  { name: 'psock_tx_pinned_messages_total', kind: 'counter', help: 'Messages pinned to the psock and handed whole to its transport (K-3).', value: (s) => s.txPinnedMsgs },
  { name: 'psock_tx_pinned_bytes_total', kind: 'counter', help: 'Bytes of messages pinned to the psock and handed whole to its transport.', value: (s) => s.txPinnedBytes },
  { name: 'psock_tx_dropped_total', kind: 'counter', help: 'Messages pinned to the psock dropped because it failed or was unattached first (K-6).', value: (s) => s.txDropped },
  { name: 'psock_tx_pinned_queued_messages', kind: 'gauge', help: 'Messages pinned to the psock waiting to be written (K-4).', value: (s) => s.txPinnedQueued },
  { name: 'psock_id', kind: 'gauge', help: 'The psock\'s id: unique in its multiplexor, never reused, unlike the index label (K-1).', value: (s) => s.id },
  { name: 'psock_rx_mem_fail_total', kind: 'counter', help: 'Receive memory failures (strparser mem_fail).', value: (s) => s.rxMemFail },
  { name: 'psock_rx_need_more_hdr_total', kind: 'counter', help: 'Parser calls that returned 0, need more bytes (need_more_hdr).', value: (s) => s.rxNeedMoreHdr },
  { name: 'psock_rx_msg_too_big_total', kind: 'counter', help: 'Messages longer than maxMessageSize, EMSGSIZE (msg_too_big).', value: (s) => s.rxMsgTooBig },
  { name: 'psock_rx_msg_timeouts_total', kind: 'counter', help: 'Messages not assembled within assemblyTimeout, ETIMEDOUT (msg_timeouts).', value: (s) => s.rxMsgTimeouts },
  { name: 'psock_rx_bad_hdr_len_total', kind: 'counter', help: 'Parser lengths not beyond the bytes already seen (bad_hdr_len).', value: (s) => s.rxBadHdrLen },
  { name: 'psock_rx_aborted_total', kind: 'counter', help: 'Receive aborts (strparser aborts).', value: (s) => s.rxAborted },
  { name: 'psock_rx_interrupted_total', kind: 'counter', help: 'Interrupted receive runs (interrupted).', value: (s) => s.rxInterrupted },
  { name: 'psock_rx_unrecov_intr_total', kind: 'counter', help: 'Unrecoverable interrupted receive runs (unrecov_intr).', value: (s) => s.rxUnrecovIntr },
  { name: 'psock_rx_partial_bytes', kind: 'gauge', help: 'Bytes of a message under assembly.', value: (s) => s.rxPartialBytes },
  { name: 'psock_tx_queued_bytes', kind: 'gauge', help: 'Bytes the transport holds for writing.', value: (s) => s.txQueuedBytes },
  { name: 'psock_tx_stopped', kind: 'gauge', help: '1 once the psock left transmit rotation for good (TxStop).', value: (s) => s.txStopped },
  { name: 'psock_rx_stopped', kind: 'gauge', help: '1 once the psock\'s stream parser stopped (RxStop).', value: (s) => s.rxStopped },
  { name: 'psock_rx_paused', kind: 'gauge', help: '1 while the psock holds a message no socket could take (RxPause).', value: (s) => s.rxPaused },
];

const connectorFamilies: Family<KcmConnectorStats>[] = [
  { name: 'connector_connections', kind: 'gauge', help: 'Connections the connector wants now, over every endpoint.', value: (s) => s.connections },
  { name: 'connector_connected', kind: 'gauge', help: 'Connections up and in transmit rotation.', value: (s) => s.connected },
  { name: 'connector_failing', kind: 'gauge', help: '1 while sends fail (failAfter ran out with no connection up).', value: (s) => s.failing },
  { name: 'connector_resolutions_total', kind: 'counter', help: 'Resolutions of the dns:/srv: name.', value: (s) => s.resolutions },
  { name: 'connector_resolve_failures_total', kind: 'counter', help: 'Resolutions that failed (the endpoints known were kept).', value: (s) => s.resolveFailures },
];

const endpointFamilies: Family<EndpointStats>[] = [
  { name: 'connector_endpoint_connections', kind: 'gauge', help: 'Connections wanted to the endpoint.', value: (s) => s.connections },
  { name: 'connector_endpoint_connected', kind: 'gauge', help: 'Connections up to the endpoint and in transmit rotation.', value: (s) => s.connected },
  { name: 'connector_endpoint_draining', kind: 'gauge', help: 'Connections to the endpoint being drained.', value: (s) => s.draining },
  { name: 'connector_endpoint_connects_total', kind: 'counter', help: 'Connections established to the endpoint.', value: (s) => s.connects },
  { name: 'connector_endpoint_disconnects_total', kind: 'counter', help: 'Established connections to the endpoint that failed.', value: (s) => s.disconnects },
  { name: 'connector_endpoint_connect_failures_total', kind: 'counter', help: 'Connection attempts to the endpoint that failed.', value: (s) => s.connectFailures },
  { name: 'connector_endpoint_replaced_total', kind: 'counter', help: 'Connections to the endpoint replaced for maxConnectionAge.', value: (s) => s.replaced },
  { name: 'connector_endpoint_tx_messages_total', kind: 'counter', help: 'Messages sent to the endpoint.', value: (s) => s.txMsgs },
  { name: 'connector_endpoint_rx_messages_total', kind: 'counter', help: 'Messages received from the endpoint.', value: (s) => s.rxMsgs },
];

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Formats the statistics of one multiplexor, or several (labelled `mux="0"`, `mux="1"`,
 * … in array order), in the Prometheus text format: every counter with its `# HELP`
 * and `# TYPE` lines, socket and psock series labelled by index [ST-1 … ST-3].
 * Accepts multiplexors (`stats()` is called once each) or `MuxStats` objects.
 *
 * @throws TypeError for a source that is neither, a prefix or label name that is not a
 * valid Prometheus name.
 */
export function formatPrometheus(source: StatsSource | MuxStats | KcmConnectorStats | readonly (StatsSource | MuxStats | KcmConnectorStats)[], options: PrometheusOptions = {}): string {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const prefix = options.prefix ?? 'kcm';
  if (typeof prefix !== 'string') throw invalidArgType('options.prefix', 'of type string', prefix);
  if (!NAME.test(prefix)) throw invalidArgValue('options.prefix', 'must be a valid Prometheus metric name', prefix);
  let base = '';
  if (options.labels !== undefined) {
    if (options.labels === null || typeof options.labels !== 'object') throw invalidArgType('options.labels', 'of type object', options.labels);
    const parts: string[] = [];
    for (const [k, v] of Object.entries(options.labels)) {
      if (!LABEL.test(k) || k.startsWith('__')) throw invalidArgValue(`options.labels.${k}`, 'must have a valid Prometheus label name', k);
      if (typeof v !== 'string') throw invalidArgType(`options.labels.${k}`, 'of type string', v);
      parts.push(`${k}="${escapeLabel(v)}"`);
    }
    base = parts.join(',');
  }
  const many = Array.isArray(source);
  const list = (many ? source : [source]) as readonly unknown[];
  const all: { labels: string; stats: MuxStats }[] = [];
  const connectors: { labels: string; stats: KcmConnectorStats }[] = [];
  list.forEach((s, i) => {
    const stats = toStats(s, many ? `source[${i}]` : 'source');
    if ('endpoints' in stats) connectors.push({ labels: many ? join(base, `connector="${connectors.length}"`) : base, stats });
    else all.push({ labels: many ? join(base, `mux="${all.length}"`) : base, stats });
  });

  const out: string[] = [];
  const header = (name: string, kind: Kind, help: string): void => {
    out.push(`# HELP ${prefix}_${name} ${help}`, `# TYPE ${prefix}_${name} ${kind}`);
  };
  if (connectors.length > 0) {
    for (const f of connectorFamilies) {
      header(f.name, f.kind, f.help);
      for (const c of connectors) out.push(sample(`${prefix}_${f.name}`, c.labels, f.value(c.stats)));
    }
    for (const f of endpointFamilies) {
      header(f.name, f.kind, f.help);
      for (const c of connectors) {
        for (const e of c.stats.endpoints) out.push(sample(`${prefix}_${f.name}`, join(c.labels, `endpoint="${escapeLabel(e.endpoint)}",name="${escapeLabel(e.name)}"`), f.value(e)));
      }
    }
    if (all.length === 0) return `${out.join('\n')}\n`;
  }
  for (const f of muxFamilies) {
    header(f.name, f.kind, f.help);
    for (const m of all) out.push(sample(`${prefix}_${f.name}`, m.labels, f.value(m.stats)));
  }
  for (const f of socketFamilies) {
    header(f.name, f.kind, f.help);
    for (const m of all) for (const k of m.stats.sockets) out.push(sample(`${prefix}_${f.name}`, join(m.labels, `socket="${k.index}"`), f.value(k)));
  }
  for (const f of psockFamilies) {
    header(f.name, f.kind, f.help);
    for (const m of all) for (const p of m.stats.psocks) out.push(sample(`${prefix}_${f.name}`, join(m.labels, `psock="${p.index}"`), f.value(p)));
  }
  return `${out.join('\n')}\n`;
}

function toStats(source: unknown, name: string): MuxStats | KcmConnectorStats {
  if (source !== null && typeof source === 'object') {
    const s = source as Partial<StatsSource & MuxStats>;
    if (typeof s.stats === 'function') return s.stats() as MuxStats | KcmConnectorStats;
    if (Array.isArray((s as Partial<KcmConnectorStats>).endpoints) && typeof (s as Partial<KcmConnectorStats>).connected === 'number') return s as unknown as KcmConnectorStats;
    if (Array.isArray(s.sockets) && Array.isArray(s.psocks) && typeof s.rxMsgs === 'number') return s as MuxStats;
  }
  throw invalidArgType(name, 'a Multiplexor, a KcmConnector or the result of their stats()', source);
}

function sample(name: string, labels: string, value: Value): string {
  const v = typeof value === 'boolean' ? (value ? 1 : 0) : value;
  return labels === '' ? `${name} ${v}` : `${name}{${labels}} ${v}`;
}

function join(a: string, b: string): string {
  return a === '' ? b : `${a},${b}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
