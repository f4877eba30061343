/**
 * The shipped header `bpf/kcm.h`, found by `kcm bpf include`: a parser written against it
 * builds with clang alone and behaves as docs/bpf.md says once loaded.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBpf } from '../../src/index.js';
import { runCli } from './run-cli.js';
import { cSnippets, hasClang } from './snippets.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Every declaration of the header in one program; results are picked by the first byte. */
const EVERYTHING = `#include "kcm.h"

SEC("socket_kcm")
int everything(struct __sk_buff *skb)
{
	__u8 buf[4];
	__u8 op = load_byte(skb, 0);

	if (op == 1)
		return load_half(skb, 1) + 3;                 /* 2-byte length after the tag */
	if (op == 2)
		return load_word(skb, 1) + 5;                 /* 4-byte length after the tag */
	if (op == 3) {
		long r = bpf_skb_load_bytes(skb, 1, buf, 4);
		if (r < 0)
			return r;                             /* -EFAULT when not all there */
		return buf[3] + 5;
	}
	if (op == 4) {
		long r = bpf_skb_load_bytes_relative(skb, 1, buf, 2, 0);
		return r < 0 ? r : buf[1] + 3;
	}
	if (op == 5)
		return skb->len;                              /* the bytes available */
	if (op == 6) {
		__u32 seen = skb->cb[0];                      /* zeroed before each run */
		skb->cb[0] = 7;
		return seen + skb->cb[0] + skb->mark + skb->hash; /* 7: other fields read 0 */
	}
	if (op == 7) {
		__u64 t = bpf_ktime_get_ns();
		__u32 r = bpf_get_prandom_u32() & 0;
		char fmt[] = "len %u";
		bpf_trace_printk(fmt, sizeof(fmt), skb->len);
		return (t != 0) + r + bpf_get_smp_processor_id(); /* 1 */
	}
	if (op == 8)
		return -EBADMSG;
	if (op == 9)
		return -EMSGSIZE;
	if (op == 10)
		return -EPROTO;
	return -EINVAL;
}

char _license[] SEC("license") = "MIT";
`;

function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'kcm-header-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function build(dir: string, name: string, source: string, include: string): string {
  const src = join(dir, `${name}.c`);
  const obj = join(dir, `${name}.o`);
  writeFileSync(src, source);
  // -Werror: the header itself must be warning-free under -Wall -Wextra.
  execFileSync('clang', ['-O2', '-target', 'bpf', '-Wall', '-Wextra', '-Werror', '-I', include, '-c', src, '-o', obj], { stdio: 'pipe', timeout: 30_000 });
  return obj;
}

test('kcm bpf include prints the folder that holds the shipped kcm.h', async () => {
  const r = await runCli(['bpf', 'include']);
  assert.equal(r.code, 0, r.stderr);
  const dir = r.stdout.trimEnd();
  assert.equal(r.stdout, `${dir}\n`);
  assert.equal(dir, join(ROOT, 'bpf'));
  assert.ok(existsSync(join(dir, 'kcm.h')));
  const bad = await runCli(['bpf', 'include', 'extra']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /include takes no arguments/);
});

test('the package ships bpf/kcm.h', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  assert.ok(pkg.files.includes('bpf'), `files: ${pkg.files.join(', ')}`);
});

test('[F-3a][F-3b][F-3c][F-3d][F-7][F-5] a program using every declaration of kcm.h builds with clang alone and runs as documented', (t) => {
  if (!hasClang()) return t.skip('clang is not installed (Debian: apt-get install clang)');
  const obj = build(scratch(t), 'everything', EVERYTHING, join(ROOT, 'bpf'));
  const parse = loadBpf(obj);
  const run = (...bytes: number[]): number => parse(Buffer.from(bytes));
  assert.equal(run(1, 0, 9), 12);
  assert.equal(run(1, 0), 0, 'a load past the data: need more');
  assert.equal(run(2, 0, 0, 1, 0), 261);
  assert.equal(run(3, 0, 0, 0, 6), 11);
  assert.equal(run(3, 0, 0), -14, 'bpf_skb_load_bytes past the data: -EFAULT');
  assert.equal(run(4, 0, 2), 5);
  assert.equal(run(5, 1, 2, 3, 4, 5, 6), 7);
  assert.equal(run(6), 7);
  assert.equal(run(6), 7, 'cb is zeroed for each run');
  assert.equal(run(7), 1);
  assert.deepEqual([run(8), run(9), run(10), run(11)], [-74, -90, -71, -22]);
});

test('every C snippet of the docs builds against the shipped header', (t) => {
  if (!hasClang()) return t.skip('clang is not installed (Debian: apt-get install clang)');
  const dir = scratch(t);
  const snippets = cSnippets(join(ROOT, 'docs'));
  assert.ok(snippets.length > 0, 'docs/bpf.md has a C example');
  for (const s of snippets) {
    const obj = build(dir, `snippet${s.index}`, s.code, join(ROOT, 'bpf'));
    assert.equal(typeof loadBpf(obj), 'function', `${s.where} loads`);
  }
});
