import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBpf } from '../../../src/index.js';
import { thriftObject } from '../../../src/cli/bench/thrift-object.js';

const source = fileURLToPath(new URL('../../../../src/cli/bench/thrift.c', import.meta.url));

test('the shipped Thrift object frames a 4-byte big-endian length that excludes itself', () => {
  const parse = loadBpf(thriftObject());
  assert.equal(parse(Buffer.from('0000000a', 'hex')), 14);
  assert.equal(parse(Buffer.from('00000000', 'hex')), 4);
  assert.equal(parse(Buffer.from('000001', 'hex')), 0, 'a partial header asks for more');
});

test('the shipped Thrift object is what clang builds from thrift.c', (t) => {
  try {
    execFileSync('clang', ['--version'], { stdio: 'ignore' });
  } catch {
    return t.skip('clang is not installed');
  }
  const dir = mkdtempSync(join(tmpdir(), 'kcm-thrift-'));
  try {
    const obj = join(dir, 'thrift.o');
    execFileSync('clang', ['-O2', '-g0', '-target', 'bpf', '-c', source, '-o', obj], { stdio: 'pipe', timeout: 30_000 });
    assert.deepEqual(new Uint8Array(readFileSync(obj)), thriftObject());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
