import { installSocketExtensions } from './mux/socket-extensions.js';
import { cloneForWorker } from './worker/proxy-endpoint.js';
import { adoptWorkerPort } from './worker/adopted-endpoint.js';
import { KcmConnector } from './helpers/kcm-connector.js';
export { KcmError, errnos, errnoName } from './errors.js';
export type { ErrnoName } from './errors.js';
export type { Parser } from './parsers/parser.js';
export { loadBpf } from './bpf/load-bpf.js';
export type { LoadBpfOptions } from './bpf/load-bpf.js';
export { lengthField } from './parsers/length-field.js';
export type { LengthFieldSpec } from './parsers/length-field.js';
export { KcmSocket } from './mux/kcm-socket.js';
export type {
  KcmSocketOptions, KcmSocketType, SendOptions, SendManyOptions, ReceiveOptions, ReceiveIntoResult, ReceiveFromResult, KcmSocketStats, Message, KcmSocketEvents,
} from './mux/kcm-socket.js';
export type { KcmWorkerPort } from './worker/worker-port.js';
export { Multiplexor } from './mux/multiplexor.js';
export type { MuxStats, KcmSocketMuxStats, MultiplexorEvents } from './mux/multiplexor.js';
export { Psock } from './mux/psock.js';
export type { PsockStats, AttachOptions, PsockEvents, PsockRef } from './mux/psock.js';
export { formatKcmTable } from './mux/kcm-table.js';
export { AbortError } from './mux/abort-error.js';
export { KcmConnector } from './helpers/kcm-connector.js';
export type { ConnectOptions, KcmConnectorEvents, ConnectEvent, DisconnectEvent, ReconnectingEvent, KcmConnectorStats } from './helpers/kcm-connector.js';
export { KcmServer, listen } from './helpers/kcm-server.js';
export type { KcmServerOptions, ListenOptions, ServerConnectionEvent, ServerDisconnectEvent, KcmServerStats, ServerHandler } from './helpers/kcm-server.js';
export { Backoff } from './helpers/backoff.js';
export type { BackoffOptions } from './helpers/backoff.js';
export { formatPrometheus } from './stats/prometheus.js';
export type { PrometheusOptions, StatsSource } from './stats/prometheus.js';
export { channelNames, muxCreateChannel, muxDestroyChannel, psockAttachChannel, psockUnattachChannel, psockErrorChannel } from './diagnostics.js';
export type { MuxMessage, PsockMessage, PsockUnattachMessage, PsockErrorMessage } from './diagnostics.js';
export { Requester } from './helpers/requester.js';
export type { RequesterOptions, RequestOptions, RequesterStats, RequestId } from './helpers/requester.js';
export type { Endpoint, EndpointOption, EndpointStats, DrainEvent, EndpointsEvent } from './helpers/kcm-connector.js';

// The socket's members that live above the multiplexor's layer, installed once here so
// that src/mux/ never imports src/worker/ or src/helpers/ (see socket-extensions.ts).
installSocketExtensions({
  cloneForWorker,
  adopt: adoptWorkerPort,
  connect: (socket, options) => new KcmConnector(socket, options),
});
