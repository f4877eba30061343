import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Backoff } from '../../src/helpers/backoff.js';

test('backoff grows by factor and stops at max', () => {
  const b = new Backoff({ initial: 10, max: 100, factor: 3, jitter: false });
  const delays = [1, 2, 3, 4, 5, 50, 5000].map((n) => b.delay(n));
  assert.deepEqual(delays, [10, 30, 90, 100, 100, 100, 100]);
});

test('jitter keeps each delay in the upper half of its bound, never above max', () => {
  const b = new Backoff({ initial: 8, max: 64, factor: 2 });
  for (let attempt = 1; attempt <= 40; attempt++) {
    const bound = Math.min(64, 8 * 2 ** (attempt - 1));
    assert.equal(b.delay(attempt, () => 0), Math.round(bound / 2));
    assert.equal(b.delay(attempt, () => 0.999999), Math.round(bound / 2 + 0.999999 * (bound / 2)));
    const d = b.delay(attempt);
    assert.ok(d >= bound / 2 - 1 && d <= bound, `attempt ${attempt}: ${d} not in [${bound / 2}, ${bound}]`);
  }
});

test('huge attempt counts stay finite', () => {
  const b = new Backoff({ initial: 1, max: 1000, factor: 10, jitter: false });
  assert.equal(b.delay(1e9), 1000);
});

test('defaults and argument errors', () => {
  const b = new Backoff();
  assert.deepEqual([b.initial, b.max, b.factor, b.jitter], [100, 10000, 2, true]);
  assert.throws(() => new Backoff({ initial: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => new Backoff({ initial: 100, max: 10 }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => new Backoff({ factor: 0.5 }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => new Backoff({ factor: '2' as unknown as number }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => new Backoff({ jitter: 1 as unknown as boolean }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => new Backoff(null as unknown as object), { code: 'ERR_INVALID_ARG_TYPE' });
});
