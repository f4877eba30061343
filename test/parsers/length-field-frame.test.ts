import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { lengthField, type LengthFieldSpec } from '../../src/parsers/length-field.js';
import { hex } from './harness.js';

const RUNS = { numRuns: 2000 };

function throwsCode(fn: () => unknown, type: typeof TypeError | typeof RangeError, code: string, what: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof type, `${what}: ${String(err)}`);
    assert.equal((err as { code?: string }).code, code, what);
    return true;
  });
}

function wire(parts: Buffer[]): string {
  return Buffer.concat(parts).toString('hex');
}

describe('lengthField(spec).frame()', () => {
  test('[P-3] Thrift framed: a 4-byte length that excludes itself, then the payload', () => {
    const p = lengthField({ size: 4, adjust: 4 });
    const parts = p.frame(Buffer.from('hello'));
    assert.equal(parts.length, 2);
    assert.equal(wire(parts), '00000005' + Buffer.from('hello').toString('hex'));
    assert.equal(p(Buffer.concat(parts)), 9);
  });

  test('every size in both byte orders writes what the parser reads', () => {
    const payload = Buffer.alloc(0x100, 0xaa);
    const cases: Array<[LengthFieldSpec, string]> = [
      [{ size: 1, adjust: 2 }, 'ff'], // 1 + 256 - 2
      [{ size: 2 }, '0102'], // 2 + 256
      [{ size: 2, endian: 'little' }, '0201'],
      [{ size: 3, adjust: 3 }, '000100'],
      [{ size: 3, endian: 'little' }, '030100'],
      [{ size: 4, adjust: -1 }, '00000105'],
      [{ size: 4, endian: 'little', adjust: 4 }, '00010000'],
      [{ size: 8, adjust: 8 }, '0000000000000100'],
      [{ size: 8, endian: 'little', adjust: 7 }, '0101000000000000'],
    ];
    for (const [spec, header] of cases) {
      const p = lengthField(spec);
      const parts = p.frame(payload);
      assert.equal(parts[0]!.toString('hex'), header, JSON.stringify(spec));
      assert.equal(p(Buffer.concat(parts)), Buffer.concat(parts).length, JSON.stringify(spec));
    }
  });

  test('offset: the first offset bytes of the header come from prefix, else zero', () => {
    const p = lengthField({ offset: 3, size: 2 });
    assert.equal(wire(p.frame(hex('ee'))), '000000' + '0006' + 'ee');
    assert.equal(wire(p.frame(hex('ee'), hex('a1b2c3'))), 'a1b2c3' + '0006' + 'ee');
    // A shorter prefix leaves the rest zero; a longer one gives its first offset bytes.
    assert.equal(wire(p.frame(hex('ee'), hex('a1'))), 'a10000' + '0006' + 'ee');
    assert.equal(wire(p.frame(hex('ee'), hex('a1b2c3d4'))), 'a1b2c3' + '0006' + 'ee');
    // With offset 0 a prefix contributes nothing.
    assert.equal(wire(lengthField({ size: 1 }).frame(hex('ee'), hex('ff'))), '02ee');
  });

  test('the payload parts are returned as they are, not copied; the header is new', () => {
    const p = lengthField({ size: 2, adjust: 2 });
    const a = Buffer.from('ab');
    const b = new Uint8Array([1, 2, 3]);
    const parts = p.frame([a, b]);
    assert.equal(parts.length, 3);
    assert.equal(parts[1], a);
    assert.ok(Buffer.isBuffer(parts[2]));
    assert.equal(parts[2]!.buffer, b.buffer, 'a Uint8Array part is viewed, not copied');
    b[0] = 9;
    assert.equal(parts[2]![0], 9);
    assert.equal(wire(parts), '0005' + '6162' + '090203');
    const twice = p.frame(a);
    assert.notEqual(twice[0], p.frame(a)[0], 'every frame gets its own header');
  });

  test('an empty payload is a header-only message', () => {
    const p = lengthField({ size: 4, adjust: 4 });
    assert.equal(wire(p.frame(Buffer.alloc(0))), '00000000');
    assert.equal(wire(p.frame([])), '00000000');
    assert.equal(p(Buffer.concat(p.frame([]))), 4);
  });

  test('a length beyond the field is a RangeError', () => {
    throwsCode(() => lengthField({ size: 1 }).frame(Buffer.alloc(255)), RangeError, 'ERR_OUT_OF_RANGE', '1 + 255 > 0xff');
    assert.equal(wire(lengthField({ size: 1 }).frame(Buffer.alloc(254))).slice(0, 2), 'ff');
    throwsCode(() => lengthField({ size: 2, adjust: 2 }).frame(Buffer.alloc(0x10000)), RangeError, 'ERR_OUT_OF_RANGE', 'u16 overflow');
    lengthField({ size: 2, adjust: 2 }).frame(Buffer.alloc(0xffff));
    // A negative field value: adjust larger than the whole frame.
    throwsCode(() => lengthField({ size: 4, adjust: 10 }).frame(Buffer.alloc(5)), RangeError, 'ERR_OUT_OF_RANGE', 'negative');
    assert.match(
      (() => {
        try {
          lengthField({ size: 1 }).frame(Buffer.alloc(300));
        } catch (err) {
          return (err as Error).message;
        }
        return '';
      })(),
      /fits 1 bytes: 0 to 255/,
    );
  });

  test('a total beyond max is a RangeError; exactly max is accepted', () => {
    const p = lengthField({ size: 4, adjust: 4, max: 20 });
    assert.equal(Buffer.concat(p.frame(Buffer.alloc(16))).length, 20);
    throwsCode(() => p.frame(Buffer.alloc(17)), RangeError, 'ERR_OUT_OF_RANGE', 'max');
    throwsCode(() => p.frame([Buffer.alloc(10), Buffer.alloc(7)]), RangeError, 'ERR_OUT_OF_RANGE', 'max over parts');
  });

  test('argument validation: payload parts and prefix must be Uint8Arrays', () => {
    const p = lengthField();
    throwsCode(() => p.frame('text' as unknown as Uint8Array), TypeError, 'ERR_INVALID_ARG_TYPE', 'string');
    throwsCode(() => p.frame(undefined as unknown as Uint8Array), TypeError, 'ERR_INVALID_ARG_TYPE', 'undefined');
    throwsCode(() => p.frame([Buffer.alloc(1), 'x' as unknown as Uint8Array]), TypeError, 'ERR_INVALID_ARG_TYPE', 'part');
    throwsCode(() => p.frame(Buffer.alloc(1), [1] as unknown as Uint8Array), TypeError, 'ERR_INVALID_ARG_TYPE', 'prefix');
  });

  test('[P-2][P-3] property: the parser reads back the total length of every frame, for every spec and payload', () => {
    const specArb = fc.record({
      offset: fc.integer({ min: 0, max: 9 }),
      size: fc.constantFrom<1 | 2 | 3 | 4 | 8>(1, 2, 3, 4, 8),
      endian: fc.constantFrom<'big' | 'little'>('big', 'little'),
      adjust: fc.integer({ min: -300, max: 300 }),
      max: fc.option(fc.integer({ min: 1, max: 600 }), { nil: undefined }),
    });
    const payloadArb = fc.oneof(fc.uint8Array({ maxLength: 400 }), fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 5 }));
    fc.assert(
      fc.property(specArb, payloadArb, fc.option(fc.uint8Array({ maxLength: 12 }), { nil: undefined }), (spec, payload, prefix) => {
        const p = lengthField(spec);
        const bytes = payload instanceof Uint8Array ? payload.length : payload.reduce((n, b) => n + b.length, 0);
        const total = spec.offset + spec.size + bytes;
        const value = total - spec.adjust;
        const fits = value >= 0 && value < 2 ** (8 * spec.size) && (spec.max === undefined || total <= spec.max);
        if (!fits) {
          throwsCode(() => p.frame(payload, prefix), RangeError, 'ERR_OUT_OF_RANGE', JSON.stringify(spec));
          return;
        }
        const parts = p.frame(payload, prefix);
        const frame = Buffer.concat(parts);
        assert.equal(frame.length, total);
        assert.equal(p(frame), total);
        // The parser needs nothing past the header, and a following message does not confuse it.
        assert.equal(p(Buffer.concat([frame, frame])), total);
        assert.equal(p(frame.subarray(0, spec.offset + spec.size)), total);
        const expectPrefix = Buffer.alloc(spec.offset);
        if (prefix !== undefined) expectPrefix.set(prefix.subarray(0, spec.offset));
        assert.deepEqual(frame.subarray(0, spec.offset), expectPrefix);
        assert.deepEqual(frame.subarray(spec.offset + spec.size), Buffer.concat(payload instanceof Uint8Array ? [payload] : payload));
      }),
      RUNS,
    );
  });
});
