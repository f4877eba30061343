/**
 * A memcached binary-protocol client over KCM: requests go out on any of 4 connections
 * and responses, which come back on whichever connection carried the request, are
 * matched by their `opaque` field.
 *
 * Every packet has a 24-byte header whose bytes 8-11 hold the length of the body that
 * follows, so the whole framing is one parser:
 *
 * ```
 *  0      1      2-3      4      5       6-7              8-11        12-15   16-23
 * +------+------+--------+------+-------+----------------+-----------+-------+-----+
 * |magic |opcode|key len |extras|data   |vbucket / status|total body |opaque | cas |
 * |      |      |        |len   |type   |                |length     |       |     |
 * +------+------+--------+------+-------+----------------+-----------+-------+-----+
 * lengthField({ offset: 8, size: 4, adjust: 24 })
 * ```
 *
 *   node dist/examples/memcached-client.js [--server host:port]
 *
 * Without `--server` it starts a small in-process memcached (GET, SET, DELETE, NOOP)
 * built on KcmServer, so the example runs anywhere.
 */
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { KcmError, KcmSocket, Requester, lengthField, listen, type KcmConnector, type KcmServer } from '../src/index.js';

export const parser = lengthField({ offset: 8, size: 4, adjust: 24, max: 1024 * 1024 + 24 });

const REQUEST = 0x80;
const RESPONSE = 0x81;
export const GET = 0x00;
export const SET = 0x01;
export const DELETE = 0x04;
export const NOOP = 0x0a;
export const STATUS_OK = 0x0000;
export const STATUS_NOT_FOUND = 0x0001;

interface Packet {
  magic: number;
  opcode: number;
  status: number;
  opaque: number;
  extras: Buffer;
  key: Buffer;
  value: Buffer;
}

/**
 * One packet as the parts of one message. `parser.frame()` writes the header's first 12
 * bytes: the first 8 from `prefix`, then the body length (the 12 bytes of opaque and
 * cas, and the body, minus the 24 - 12 that `adjust` adds back).
 */
export function packet(magic: number, opcode: number, opaque: number, fields: { key?: Buffer; extras?: Buffer; value?: Buffer; status?: number } = {}): Buffer[] {
  const key = fields.key ?? Buffer.alloc(0);
  const extras = fields.extras ?? Buffer.alloc(0);
  const value = fields.value ?? Buffer.alloc(0);
  const prefix = Buffer.alloc(8);
  prefix.writeUInt8(magic, 0);
  prefix.writeUInt8(opcode, 1);
  prefix.writeUInt16BE(key.length, 2);
  prefix.writeUInt8(extras.length, 4);
  prefix.writeUInt16BE(fields.status ?? 0, 6);
  const opaqueCas = Buffer.alloc(12);
  opaqueCas.writeUInt32BE(opaque, 0);
  return parser.frame([opaqueCas, extras, key, value], prefix);
}

export function parse(frame: Buffer): Packet {
  const keyLength = frame.readUInt16BE(2);
  const extrasLength = frame.readUInt8(4);
  return {
    magic: frame.readUInt8(0),
    opcode: frame.readUInt8(1),
    status: frame.readUInt16BE(6),
    opaque: frame.readUInt32BE(12),
    extras: frame.subarray(24, 24 + extrasLength),
    key: frame.subarray(24 + extrasLength, 24 + extrasLength + keyLength),
    value: frame.subarray(24 + extrasLength + keyLength),
  };
}

export class MemcachedClient {
  readonly socket = KcmSocket.create();
  readonly connector: KcmConnector;
  readonly requester: Requester;
  private opaque = 0;

  /** `failAfter`: ms with no connection up before calls fail (ECONNREFUSED …) instead of waiting. */
  constructor(host: string, port: number, connections = 4, failAfter = 3000) {
    this.connector = this.socket.connect({ host, port, connections, parser, failAfter });
    // Responses are matched by their opaque field, whichever connection brought them.
    this.requester = new Requester(this.socket, { id: (frame) => (frame[0] === RESPONSE ? frame.readUInt32BE(12) : undefined), timeout: 5000 });
  }

  private async request(opcode: number, fields: { key?: Buffer; extras?: Buffer; value?: Buffer }): Promise<Packet> {
    const opaque = (this.opaque = (this.opaque + 1) >>> 0);
    return parse(await this.requester.request(packet(REQUEST, opcode, opaque, fields), opaque));
  }

  async set(key: string, value: Buffer | string, expiry = 0): Promise<void> {
    const extras = Buffer.alloc(8); // flags, expiry
    extras.writeUInt32BE(expiry, 4);
    const r = await this.request(SET, { key: Buffer.from(key), extras, value: Buffer.from(value) });
    if (r.status !== STATUS_OK) throw new Error(`SET ${key}: status ${r.status}`);
  }

  /** The value, or undefined when the key is not found. */
  async get(key: string): Promise<Buffer | undefined> {
    const r = await this.request(GET, { key: Buffer.from(key) });
    if (r.status === STATUS_NOT_FOUND) return undefined;
    if (r.status !== STATUS_OK) throw new Error(`GET ${key}: status ${r.status}`);
    return Buffer.from(r.value);
  }

  /** True when the key existed. */
  async delete(key: string): Promise<boolean> {
    const r = await this.request(DELETE, { key: Buffer.from(key) });
    return r.status === STATUS_OK;
  }

  async close(): Promise<void> {
    this.requester.close();
    await this.connector.close();
    this.socket.close();
  }
}

/** A tiny memcached (binary protocol: GET, SET, DELETE, NOOP) on a KcmServer. */
export async function startFakeMemcached(port = 0): Promise<KcmServer> {
  const server = await listen({ port, host: '127.0.0.1', parser, sockets: 2 });
  const store = new Map<string, Buffer>();
  for (const sock of server.sockets) {
    sock.on('message', (frame: Buffer) => {
      const p = parse(frame);
      const key = p.key.toString();
      let reply: Buffer[];
      if (p.opcode === SET) {
        store.set(key, Buffer.from(p.value));
        reply = packet(RESPONSE, SET, p.opaque);
      } else if (p.opcode === GET) {
        const value = store.get(key);
        reply = value === undefined
          ? packet(RESPONSE, GET, p.opaque, { status: STATUS_NOT_FOUND, value: Buffer.from('Not found') })
          : packet(RESPONSE, GET, p.opaque, { extras: Buffer.alloc(4), value });
      } else if (p.opcode === DELETE) {
        reply = packet(RESPONSE, DELETE, p.opaque, { status: store.delete(key) ? STATUS_OK : STATUS_NOT_FOUND });
      } else {
        reply = packet(RESPONSE, p.opcode, p.opaque, { status: p.opcode === NOOP ? STATUS_OK : 0x0081 });
      }
      sock.send(reply).catch(() => {});
    });
  }
  return server;
}

/** SETs `keys` keys concurrently, reads them back, deletes half; returns what it saw. */
export async function runMemcachedSession(host: string, port: number, keys = 200): Promise<{ stored: number; found: number; deleted: number; missing: number }> {
  const client = new MemcachedClient(host, port);
  try {
    const names = Array.from({ length: keys }, (_, i) => `key:${i}`);
    await Promise.all(names.map((k, i) => client.set(k, `value ${i} `.repeat(1 + (i % 5)))));
    const values = await Promise.all(names.map((k) => client.get(k)));
    let found = 0;
    values.forEach((v, i) => {
      if (v === undefined || v.toString() !== `value ${i} `.repeat(1 + (i % 5))) throw new Error(`GET key:${i} returned ${v}`);
      found++;
    });
    const deleted = (await Promise.all(names.filter((_, i) => i % 2 === 0).map((k) => client.delete(k)))).filter(Boolean).length;
    const after = await Promise.all(names.map((k) => client.get(k)));
    const missing = after.filter((v) => v === undefined).length;
    return { stored: keys, found, deleted, missing };
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--server');
  let fake: KcmServer | undefined;
  let host = '127.0.0.1';
  let port: number;
  if (at > 0) {
    const [h, p] = process.argv[at + 1]!.split(':');
    host = h!;
    port = Number(p);
  } else {
    fake = await startFakeMemcached();
    port = (fake.address() as AddressInfo).port;
  }
  try {
    const r = await runMemcachedSession(host, port);
    process.stdout.write(`stored ${r.stored}, read back ${r.found}, deleted ${r.deleted}, then ${r.missing} missing\n`);
  } finally {
    if (fake !== undefined) await new Promise((resolve) => fake!.close(resolve));
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    // A server that is down is reported in one line, not a stack trace.
    if (err instanceof KcmError && err.message.startsWith('no connection')) console.error(`memcached-client: cannot reach the server: ${err.code} (${err.message})`);
    else console.error(err);
    process.exit(1);
  });
}
