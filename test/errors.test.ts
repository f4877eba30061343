import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KcmError, checkInteger, errnoName, errnos, invalidArgType, invalidArgValue, outOfRange } from '../src/errors.js';

test('KcmError carries the Linux errno name and value', () => {
  const err = new KcmError('EMSGSIZE', 'too big');
  assert.equal(err.code, 'EMSGSIZE');
  assert.equal(err.errno, 90);
  assert.equal(err.name, 'KcmError');
  assert.ok(err instanceof Error);
});

test('[X-4] a parser return maps to its errno name, an unknown one to EBADMSG', () => {
  assert.equal(KcmError.fromParserReturn(-74).code, 'EBADMSG');
  assert.equal(KcmError.fromParserReturn(-errnos.EMSGSIZE).code, 'EMSGSIZE');
  const unknown = KcmError.fromParserReturn(-2147483646);
  assert.equal(unknown.code, 'EBADMSG');
  assert.equal(unknown.errno, 2147483646);
});

test('errnoName maps values back to names; every errno is positive and distinct', () => {
  assert.equal(errnoName(90), 'EMSGSIZE');
  assert.equal(errnoName(99999), undefined);
  const values = Object.values(errnos);
  assert.equal(new Set(values).size, values.length);
  for (const [name, value] of Object.entries(errnos)) {
    assert.ok(Number.isInteger(value) && value > 0, name);
    assert.equal(errnoName(value), name);
  }
});

test('[P-3] the errnos a stream parser reports have their Linux values', () => {
  assert.deepEqual(
    [errnos.EPROTO, errnos.EBADMSG, errnos.ESTRPIPE, errnos.ENODATA, errnos.EMSGSIZE, errnos.ETIMEDOUT],
    [71, 74, 86, 61, 90, 110],
  );
});

test('KcmError keeps a cause and an explicit errno', () => {
  const cause = new Error('inner');
  const err = new KcmError('EBADMSG', 'parser threw', { cause, errno: 1234 });
  assert.equal(err.cause, cause);
  assert.equal(err.errno, 1234);
  assert.equal(new KcmError('EPIPE').message, 'EPIPE');
  assert.equal('cause' in new KcmError('EPIPE'), false);
});

test('[X-4] fromParserReturn names the value in its message', () => {
  assert.match(KcmError.fromParserReturn(-74, 'psock 0').message, /^psock 0: .*EBADMSG.*-74/);
  assert.match(KcmError.fromParserReturn(-5000).message, /-5000.*unknown errno/);
});

test('argument errors are Node-style with codes', () => {
  const t = invalidArgType('spec', 'of type object', null);
  assert.ok(t instanceof TypeError);
  assert.equal((t as TypeError & { code: string }).code, 'ERR_INVALID_ARG_TYPE');
  assert.match(t.message, /"spec".*of type object.*Received null/);
  const r = outOfRange('spec.size', 'one of 1, 2', 5);
  assert.ok(r instanceof RangeError);
  assert.equal((r as RangeError & { code: string }).code, 'ERR_OUT_OF_RANGE');
  assert.match(r.message, /number \(5\)/);
  const v = invalidArgValue('spec.endian', "must be 'big' or 'little'", 'x'.repeat(40));
  assert.ok(v instanceof TypeError);
  assert.equal((v as TypeError & { code: string }).code, 'ERR_INVALID_ARG_VALUE');
  assert.match(v.message, /\.\.\./);
  assert.match(invalidArgType('f', 'a function', () => 0).message, /function/);
  assert.match(invalidArgType('o', 'a number', new Map()).message, /an instance of Map/);
});

test('checkInteger returns the value or throws the right error', () => {
  assert.equal(checkInteger('n', 5, 0), 5);
  assert.equal(checkInteger('n', 0, 0, 10), 0);
  assert.throws(() => checkInteger('n', '5', 0), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
  assert.throws(() => checkInteger('n', -1, 0), { code: 'ERR_OUT_OF_RANGE', name: 'RangeError', message: /an integer >= 0\./ });
  assert.throws(() => checkInteger('n', 11, 0, 10), { code: 'ERR_OUT_OF_RANGE', message: /an integer >= 0 and <= 10/ });
  assert.throws(() => checkInteger('n', 1.5, 0), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => checkInteger('n', NaN, 0), { code: 'ERR_OUT_OF_RANGE' });
});
