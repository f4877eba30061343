import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Fifo } from '../../src/mux/fifo.js';

test('Fifo.remove takes out one item, keeps the order of the rest, across the ring wrap', () => {
  for (let start = 0; start < 20; start++) {
    for (let n = 1; n <= 20; n++) {
      for (let victim = 0; victim < n; victim++) {
        const q = new Fifo<number>();
        for (let i = 0; i < start; i++) q.push(-1);
        for (let i = 0; i < start; i++) q.shift(); // move the head so the items wrap
        for (let i = 0; i < n; i++) q.push(i);
        assert.equal(q.remove(victim), true);
        const expected = [...Array(n).keys()].filter((i) => i !== victim);
        assert.deepEqual([...q], expected, `start ${start}, ${n} items, removing ${victim}`);
        assert.equal(q.length, n - 1);
        q.push(99);
        assert.deepEqual(q.drain(), [...expected, 99]);
      }
    }
  }
});

test('Fifo.remove of an absent item changes nothing; only the first occurrence goes', () => {
  const q = new Fifo<string>();
  assert.equal(q.remove('a'), false);
  q.push('a');
  q.push('b');
  q.push('a');
  assert.equal(q.remove('c'), false);
  assert.equal(q.remove('a'), true);
  assert.deepEqual([...q], ['b', 'a']);
});
