/**
 * The chaos soak in short (5 s): 4 KCM sockets each side, 4 connections reconnecting,
 * random resets, ends, pauses and slow reads. Every invariant of soak/soak.ts must hold:
 * no corrupt, duplicate or unknown message, order inversions covered by transmit
 * restarts, no loss but of messages last written to a failed connection. The long run is
 * `npm run soak -- --seconds N`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const script = join(fileURLToPath(new URL('.', import.meta.url)), 'soak', 'soak.js');

test('a 5 s chaos soak keeps every invariant', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [script, '--seconds', '5', '--slow-consumer-seconds', '0', '--json'], { timeout: 90000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        // Exit code 1 means a violation: the summary says which, so parse it anyway.
        if (err !== null && (err as { code?: unknown }).code !== 1) reject(new Error(`soak failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
  });
  const s = JSON.parse(out.trim().split('\n').pop()!) as {
    messages: { sent: number; received: number };
    faults: Record<string, number>;
    connections: { clientConnects: number };
    invariants: { corrupt: number; duplicates: number; unknown: number; inversions: number; txRetries: number; lostExplained: number; lostUnexplained: number };
    violations: string[];
  };
  assert.deepEqual(s.violations, []);
  assert.equal(s.invariants.corrupt, 0);
  assert.equal(s.invariants.duplicates, 0);
  assert.equal(s.invariants.unknown, 0);
  assert.equal(s.invariants.lostUnexplained, 0);
  assert.ok(s.invariants.inversions <= s.invariants.txRetries);
  assert.equal(s.messages.received + s.invariants.lostExplained, s.messages.sent, 'every message received or explained');
  assert.ok(s.messages.received > 1000, `traffic flowed (${s.messages.received} messages)`);
  assert.ok(s.faults['reset']! > 0 && s.faults['end']! + s.faults['pause']! + s.faults['slow']! > 0, 'faults were injected');
  assert.ok(s.connections.clientConnects > 4, 'the connector reconnected');
});
