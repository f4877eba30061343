import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runCli } from './run-cli.js';

test('kcm --help lists the commands and exits 0', async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: kcm <command>/);
  for (const c of ['demo', 'bench', 'bpf']) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
});

test('kcm without a command prints the usage line on stderr and exits 2', async () => {
  const r = await runCli([]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^usage: kcm <command>/);
});

test('an unknown command prints the usage line and exits 2', async () => {
  const r = await runCli(['nosuch']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'nosuch'/);
  assert.match(r.stderr, /usage: kcm <command>/);
});

test('kcm demo --help and kcm bench --help print their options and exit 0', async () => {
  for (const command of ['demo', 'bench']) {
    const r = await runCli([command, '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^usage: kcm ${command} `));
    assert.equal(r.stderr, '');
  }
});

test('kcm --version and kcm -v print the version of the package and exit 0', async () => {
  const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.match(version, /^\d+\.\d+\.\d+/);
  for (const flag of ['--version', '-v']) {
    const r = await runCli([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
  }
});
