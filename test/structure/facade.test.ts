import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

test('KcmSocket stays a facade: kcm-socket.ts under 400 lines, the two directions in their own files', () => {
  const lines = readFileSync(`${root}src/mux/kcm-socket.ts`, 'utf8').split('\n').length;
  assert.ok(lines < 400, `src/mux/kcm-socket.ts has ${lines} lines: move the work into send-queue.ts, receive-queue.ts or an endpoint`);
  for (const file of ['send-queue.ts', 'receive-queue.ts', 'socket-endpoint.ts']) {
    assert.ok(readFileSync(`${root}src/mux/${file}`, 'utf8').length > 0, file);
  }
});
