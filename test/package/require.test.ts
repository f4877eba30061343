import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root: dist/test/package/ is three levels below it. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function runNode(file: string, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A CommonJS program that loads the package by name and uses it end to end. */
const PROGRAM = `'use strict';
const assert = require('node:assert/strict');
const kcm = require('kcm');
const { KcmSocket, KcmError, lengthField, listen } = kcm;
assert.equal(typeof KcmSocket.create, 'function');
assert.equal(typeof lengthField, 'function');
assert.equal(typeof listen, 'function');
assert.equal(typeof kcm.Requester, 'function');
(async () => {
  const esm = await import('kcm');
  // One module, not two copies: classes are identical, so instanceof works across both.
  assert.equal(esm.KcmSocket, KcmSocket);
  assert.equal(esm.KcmError, KcmError);
  const parser = lengthField({ size: 4, adjust: 4 });
  const server = await listen({ port: 0, host: '127.0.0.1', parser });
  server.socket.on('message', (m) => server.socket.send(m));
  const sock = KcmSocket.create();
  const connector = sock.connect({ host: '127.0.0.1', port: server.address().port, parser });
  await sock.send(parser.frame(Buffer.from('from commonjs')));
  const reply = await sock.receive();
  console.log(reply.subarray(4).toString());
  await connector.close();
  sock.close();
  await new Promise((r) => server.close(r));
})().catch((err) => { console.error(err); process.exit(1); });
`;

test("require('kcm') from a CommonJS file of a project that depends on the package", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kcm-cjs-'));
  try {
    await mkdir(join(dir, 'node_modules'));
    await symlink(ROOT, join(dir, 'node_modules', 'kcm'), 'dir');
    await writeFile(join(dir, 'package.json'), '{ "name": "uses-kcm", "private": true }\n');
    await writeFile(join(dir, 'main.cjs'), PROGRAM);
    const r = await runNode(join(dir, 'main.cjs'), dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'from commonjs\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("require('kcm') by self-reference from inside the package", async () => {
  const dir = await mkdtemp(join(ROOT, 'dist', '.cjs-'));
  try {
    await writeFile(join(dir, 'self.cjs'), `const k = require('kcm'); console.log(typeof k.KcmSocket, typeof k.lengthField({}).frame);\n`);
    const r = await runNode(join(dir, 'self.cjs'), dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'function function\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
