import * as dns from 'node:dns';
import * as net from 'node:net';
import { checkInteger, invalidArgType, invalidArgValue } from '../errors.js';

/** One server a connector dials, as the application lists it. */
export interface EndpointOption {
  host: string;
  port: number;
  /** Share of the connections, relative to the other endpoints; default 1. */
  weight?: number;
}

/** One server a connector dials, resolved: `host` is what `net.connect` is given. */
export interface Endpoint {
  /** The address (or the host name of a listed endpoint) connections go to. */
  readonly host: string;
  readonly port: number;
  /** Share of the connections; SRV weight, or 1. */
  readonly weight: number;
  /** SRV priority (lower first), 0 otherwise. */
  readonly priority: number;
  /** The name it was found under: the `dns:` name or the SRV target; else `host`. */
  readonly name: string;
  /** `host:port` (`[host]:port` for IPv6): its label in stats, events and metrics. */
  readonly key: string;
}

/** Where a connector's endpoints come from. */
export type EndpointSource =
  | { readonly kind: 'static'; readonly endpoints: readonly Endpoint[] }
  | { readonly kind: 'dns'; readonly name: string; readonly port: number }
  | { readonly kind: 'srv'; readonly name: string };

/** What a connector needs of a resolver: the methods of `dns.promises.Resolver` it calls. */
export interface ResolverLike {
  resolve4(hostname: string): Promise<string[]>;
  resolve6(hostname: string): Promise<string[]>;
  resolveSrv(hostname: string): Promise<dns.SrvRecord[]>;
}

export function endpointKey(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

function makeEndpoint(host: string, port: number, weight: number, priority: number, name: string): Endpoint {
  return Object.freeze({ host, port, weight, priority, name, key: endpointKey(host, port) });
}

/**
 * Checks the `endpoints` option (or `host` and `port`): a list of `{ host, port, weight }`,
 * `'dns:NAME:PORT'` or `'srv:_service._proto.NAME'`.
 */
export function parseEndpoints(endpoints: unknown, host: unknown, port: unknown): EndpointSource {
  if (endpoints === undefined) {
    const p = checkInteger('options.port', port, 0, 65535);
    const h = host ?? 'localhost';
    if (typeof h !== 'string') throw invalidArgType('options.host', 'of type string', h);
    return { kind: 'static', endpoints: [makeEndpoint(h, p, 1, 0, h)] };
  }
  if (typeof endpoints === 'string') {
    if (endpoints.startsWith('srv:')) {
      const name = endpoints.slice(4);
      if (name === '' || /[\s:]/.test(name)) throw invalidArgValue('options.endpoints', "must be 'srv:_service._proto.NAME'", endpoints);
      return { kind: 'srv', name };
    }
    if (endpoints.startsWith('dns:')) {
      const at = endpoints.lastIndexOf(':');
      const name = endpoints.slice(4, at);
      const portText = endpoints.slice(at + 1);
      const p = Number(portText);
      if (at <= 4 || name === '' || /\s/.test(name) || !/^\d+$/.test(portText) || p > 65535) {
        throw invalidArgValue('options.endpoints', "must be 'dns:NAME:PORT' with a port of 0 to 65535", endpoints);
      }
      return { kind: 'dns', name, port: p };
    }
    throw invalidArgValue('options.endpoints', "must be an iterable of { host, port, weight }, 'dns:NAME:PORT' or 'srv:NAME'", endpoints);
  }
  if (endpoints === null || typeof endpoints !== 'object' || typeof (endpoints as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw invalidArgType('options.endpoints', "an iterable of { host, port, weight }, 'dns:NAME:PORT' or 'srv:NAME'", endpoints);
  }
  const list: Endpoint[] = [];
  const seen = new Set<string>();
  let i = 0;
  for (const e of endpoints as Iterable<unknown>) {
    const name = `options.endpoints[${i}]`;
    if (e === null || typeof e !== 'object') throw invalidArgType(name, 'of type object', e);
    const { host: h, port: p, weight: w } = e as Partial<EndpointOption>;
    if (typeof h !== 'string' || h === '') throw invalidArgType(`${name}.host`, 'a non-empty string', h);
    const portNumber = checkInteger(`${name}.port`, p, 0, 65535);
    const weight = w === undefined ? 1 : checkInteger(`${name}.weight`, w, 0, 65535);
    const ep = makeEndpoint(h, portNumber, weight, 0, h);
    if (seen.has(ep.key)) throw invalidArgValue(name, `repeats ${ep.key}`, e);
    seen.add(ep.key);
    list.push(ep);
    if (++i > 4096) throw invalidArgValue('options.endpoints', 'must list at most 4096 endpoints', endpoints);
  }
  if (list.length === 0) throw invalidArgValue('options.endpoints', 'must list at least one endpoint', endpoints);
  return { kind: 'static', endpoints: list };
}

/** Checks a `resolver` option: anything with the `dns.promises.Resolver` methods used. */
export function checkResolver(resolver: unknown): ResolverLike | undefined {
  if (resolver === undefined) return undefined;
  const r = resolver as Partial<ResolverLike> | null;
  if (r === null || typeof r !== 'object' || typeof r.resolve4 !== 'function' || typeof r.resolve6 !== 'function' || typeof r.resolveSrv !== 'function') {
    throw invalidArgType('options.resolver', 'a dns.promises.Resolver', resolver);
  }
  return r as ResolverLike;
}

const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND', 'NOTFOUND', 'NODATA']);

/** The A and AAAA addresses of a name (IPv4 first, each sorted); a literal address is itself. */
async function addresses(name: string, resolver: ResolverLike | undefined): Promise<string[]> {
  if (net.isIP(name) !== 0) return [name];
  if (resolver === undefined) {
    // The system's resolver, as net.connect would use: /etc/hosts included.
    const all = await dns.promises.lookup(name, { all: true });
    return sortAddresses(all.map((a) => a.address));
  }
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
  const out: string[] = [];
  if (v4.status === 'fulfilled') out.push(...v4.value);
  if (v6.status === 'fulfilled') out.push(...v6.value);
  if (out.length === 0) {
    // No address at all: the error of the A query, unless it only said "no such records".
    const err = v4.status === 'rejected' ? (v4.reason as { code?: string }) : undefined;
    const err6 = v6.status === 'rejected' ? (v6.reason as { code?: string }) : undefined;
    if (err !== undefined && !NO_RECORDS.has(err.code ?? '')) throw err;
    if (err6 !== undefined && !NO_RECORDS.has(err6.code ?? '')) throw err6;
    throw Object.assign(new Error(`${name} has no A or AAAA record`), { code: 'ENODATA' });
  }
  return sortAddresses(out);
}

function sortAddresses(list: string[]): string[] {
  const v4 = list.filter((a) => net.isIPv4(a)).sort();
  const v6 = list.filter((a) => !net.isIPv4(a)).sort();
  return [...new Set([...v4, ...v6])];
}

/**
 * The endpoints a source names now. `dns:`: one per address. `srv:`: one per record,
 * at the first address of its target. A name with no record at all rejects (the
 * connector then keeps the endpoints it had).
 */
export async function resolveEndpoints(source: EndpointSource, resolver: ResolverLike | undefined): Promise<Endpoint[]> {
  if (source.kind === 'static') return [...source.endpoints];
  if (source.kind === 'dns') {
    const list = await addresses(source.name, resolver);
    return list.map((a) => makeEndpoint(a, source.port, 1, 0, source.name));
  }
  const records = await (resolver ?? dns.promises).resolveSrv(source.name);
  if (records.length === 0) throw Object.assign(new Error(`${source.name} has no SRV record`), { code: 'ENODATA' });
  const out: Endpoint[] = [];
  const seen = new Set<string>();
  const targets = await Promise.all(records.map((r) => addresses(r.name, resolver).then((a) => a, () => [] as string[])));
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const a = targets[i]![0];
    if (a === undefined) continue; // a target with no address is skipped
    const ep = makeEndpoint(a, r.port, r.weight, r.priority, r.name);
    if (seen.has(ep.key)) continue;
    seen.add(ep.key);
    out.push(ep);
  }
  if (out.length === 0) throw Object.assign(new Error(`no SRV target of ${source.name} has an address`), { code: 'ENODATA' });
  return out;
}

/**
 * How many of `perEndpoint × n` connections each endpoint gets: in proportion to the
 * weights (largest remainder), so equal weights give each `perEndpoint`. All weights
 * zero count as equal. `active` picks which endpoints take part (SRV priority).
 */
export function shareConnections(endpoints: readonly Endpoint[], perEndpoint: number): number[] {
  const n = endpoints.length;
  if (n === 0) return [];
  const total = perEndpoint * n;
  let sum = 0;
  for (const e of endpoints) sum += e.weight;
  const weights = endpoints.map((e) => (sum === 0 ? 1 : e.weight));
  const wsum = sum === 0 ? n : sum;
  const exact = weights.map((w) => (total * w) / wsum);
  const counts = exact.map((x) => Math.floor(x));
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let j = 0; left > 0 && j < order.length; j++, left--) counts[order[j]![1]]!++;
  return counts;
}
