import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { errnos } from '../../src/errors.js';
import { kLengthField, lengthField, lengthFieldLayout, readLength, type LengthFieldSpec } from '../../src/parsers/length-field.js';
import { hex } from './harness.js';

const EMSGSIZE = -errnos.EMSGSIZE;
const EBADMSG = -errnos.EBADMSG;

function throwsCode(fn: () => unknown, type: typeof TypeError | typeof RangeError, code: string, what: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof type, `${what}: ${String(err)}`);
    assert.equal((err as { code?: string }).code, code, what);
    return true;
  });
}

describe('lengthField', () => {
  test('Thrift framed: lengthField({ size: 4, adjust: 4 }) returns the whole frame length', () => {
    const p = lengthField({ size: 4, adjust: 4 });
    assert.equal(p(hex('')), 0);
    assert.equal(p(hex('000000')), 0);
    assert.equal(p(hex('0000000c')), 16);
    assert.equal(p(hex('0000000c 0102')), 16);
    assert.equal(p(hex('00000000')), 4);
  });

  test('defaults: offset 0, size 4, big-endian, adjust 0', () => {
    const p = lengthField();
    assert.equal(p(hex('00000010')), 16);
    assert.deepEqual({ ...lengthFieldLayout(p) }, { offset: 0, size: 4, little: false, adjust: 0, max: Number.MAX_SAFE_INTEGER, headerSize: 4 });
    assert.equal(lengthField({})(hex('00000004')), 4);
  });

  test('reads every size in both byte orders', () => {
    const cases: Array<[LengthFieldSpec, string, number]> = [
      [{ size: 1 }, 'fe', 254],
      [{ size: 1, endian: 'little' }, 'fe', 254],
      [{ size: 2 }, '0102', 0x0102],
      [{ size: 2, endian: 'little' }, '0201', 0x0102],
      [{ size: 2 }, 'ffff', 0xffff],
      [{ size: 3 }, '010203', 0x010203],
      [{ size: 3, endian: 'little' }, '030201', 0x010203],
      [{ size: 3 }, 'ffffff', 0xffffff],
      [{ size: 4 }, '01020304', 0x01020304],
      [{ size: 4, endian: 'little' }, '04030201', 0x01020304],
      [{ size: 4 }, 'ffffffff', 0xffffffff],
      [{ size: 8 }, '0000000102030405', 0x0102030405],
      [{ size: 8, endian: 'little' }, '0504030201000000', 0x0102030405],
      [{ size: 8 }, '001fffffffffffff', Number.MAX_SAFE_INTEGER],
    ];
    for (const [spec, field, value] of cases) {
      const p = lengthField(spec);
      const label = `${JSON.stringify(spec)} ${field}`;
      assert.equal(p(hex(field)), value, label);
      assert.equal(p(hex(field).subarray(1)), 0, `${label} one byte short`);
      assert.equal(p(Buffer.concat([hex(field), hex('eeeeee')])), value, `${label} with following bytes`);
    }
  });

  test('offset: the field is read past a prefix; fewer than offset + size bytes need more', () => {
    // HTTP/2-like: 3-byte length at 0 plus a 9-byte header; and a field at offset 2.
    const p = lengthField({ offset: 2, size: 2, adjust: 4 });
    assert.equal(p(hex('aabb00')), 0);
    assert.equal(p(hex('aabb0003')), 7);
    assert.equal(p(hex('aabb0003 010203')), 7);
  });

  test('adjust may be negative: a length that counts itself and more', () => {
    // PostgreSQL-like: type byte, then an int32 that counts itself.
    const p = lengthField({ offset: 1, size: 4, adjust: 1 });
    assert.equal(p(hex('51 00000004')), 5);
    const q = lengthField({ size: 4, adjust: -4 });
    assert.equal(q(hex('0000000a')), 6);
  });

  test('a total above max is -EMSGSIZE; exactly max is accepted', () => {
    const p = lengthField({ size: 2, adjust: 2, max: 100 });
    assert.equal(p(hex('0062')), 100);
    assert.equal(p(hex('0063')), EMSGSIZE);
    assert.equal(lengthField({ size: 8 })(hex('ffffffffffffffff')), EMSGSIZE);
    assert.equal(lengthField({ size: 8 })(hex('0020000000000000')), EMSGSIZE);
    assert.equal(lengthField({ size: 8, max: 2 ** 40 })(hex('0000010000000001')), EMSGSIZE);
  });

  test('a total smaller than offset + size is -EBADMSG', () => {
    assert.equal(lengthField({ size: 4 })(hex('00000003')), EBADMSG);
    assert.equal(lengthField({ size: 4 })(hex('00000000')), EBADMSG);
    assert.equal(lengthField({ offset: 2, size: 2 })(hex('0000 0003')), EBADMSG);
    assert.equal(lengthField({ offset: 2, size: 2 })(hex('0000 0004')), 4);
    assert.equal(lengthField({ size: 4, adjust: -10 })(hex('00000009')), EBADMSG);
    // A length never returns 0 once the header is there: a zero total is -EBADMSG too.
    assert.equal(lengthField({ size: 1, adjust: -5 })(hex('05')), EBADMSG);
  });

  test('the parser carries its frozen layout; readLength reads it at any position', () => {
    const p = lengthField({ offset: 1, size: 3, endian: 'little', adjust: 4, max: 1000 });
    const layout = p[kLengthField];
    assert.equal(lengthFieldLayout(p), layout);
    assert.ok(Object.isFrozen(layout));
    assert.equal(lengthFieldLayout((d) => d.length), undefined);
    assert.equal(readLength(layout, hex('ffff ff 0a0000'), 2), 14);
  });

  test('the protocol framings of docs/parsers.md', () => {
    const cases: Array<[string, LengthFieldSpec, string, number]> = [
      ['Thrift framed / Kafka', { size: 4, adjust: 4 }, '00000005 48454c4c4f 00000004', 9],
      ['DNS over TCP', { size: 2, adjust: 2 }, `001d${'00'.repeat(29)}`, 31],
      ['HTTP/2 PING', { size: 3, adjust: 9, max: 16384 + 9 }, '000008 06 00 00000000 0102030405060708', 17],
      ['HTTP/2 oversize', { size: 3, adjust: 9, max: 16384 + 9 }, '004001 00 00 00000001', EMSGSIZE],
      ['memcached GET', { offset: 8, size: 4, adjust: 24 }, '80 00 0005 00 00 0000 00000005 00000000 0000000000000000 48656c6c6f', 29],
      ['PostgreSQL Query', { offset: 1, size: 4, adjust: 1 }, '51 0000000d 53454c4543542031 00', 14],
      ['PostgreSQL short length', { offset: 1, size: 4, adjust: 1 }, '51 00000003', EBADMSG],
      ['PostgreSQL startup', { size: 4 }, '00000008 04d2162f', 8],
    ];
    for (const [name, spec, bytes, want] of cases) assert.equal(lengthField(spec)(hex(bytes)), want, name);
  });

  test('argument validation: the spec must be an object', () => {
    for (const bad of [null, 4, 'size', true]) {
      throwsCode(() => lengthField(bad as unknown as LengthFieldSpec), TypeError, 'ERR_INVALID_ARG_TYPE', String(bad));
    }
  });

  test('argument validation: offset, size, endian, adjust, max', () => {
    const bad: Array<[LengthFieldSpec, typeof TypeError | typeof RangeError, string]> = [
      [{ offset: '1' as unknown as number }, TypeError, 'ERR_INVALID_ARG_TYPE'],
      [{ offset: -1 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ offset: 1.5 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ offset: NaN }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ offset: 2 ** 31 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ size: '4' as unknown as 4 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
      [{ size: 5 as 4 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ size: 0 as 4 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ size: 16 as 4 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ size: 4.5 as 4 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ endian: 'BIG' as 'big' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
      [{ endian: 'network' as 'big' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
      [{ endian: 1 as unknown as 'big' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
      [{ adjust: '4' as unknown as number }, TypeError, 'ERR_INVALID_ARG_TYPE'],
      [{ adjust: 0.5 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ adjust: Infinity }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ max: 0 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ max: -1 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ max: 1.5 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ max: 2 ** 53 }, RangeError, 'ERR_OUT_OF_RANGE'],
      [{ max: '10' as unknown as number }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    ];
    for (const [spec, type, code] of bad) throwsCode(() => lengthField(spec), type, code, JSON.stringify(spec) ?? String(spec));
  });

  test('argument validation: the message states the violated rule', () => {
    assert.throws(() => lengthField({ size: 5 as 4 }), /spec\.size.*one of 1, 2, 3, 4, 8.*5/);
    assert.throws(() => lengthField({ max: 0 }), /spec\.max.*>= 1/);
  });

  test('valid extremes are accepted', () => {
    lengthField({ offset: 0x7fffffff, size: 1 });
    lengthField({ adjust: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER });
    lengthField({ max: 1, size: 1 });
    for (const size of [1, 2, 3, 4, 8] as const) for (const endian of ['big', 'little'] as const) lengthField({ size, endian });
  });
});
