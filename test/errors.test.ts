import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KcmError, errnos } from '../src/errors.js';

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
