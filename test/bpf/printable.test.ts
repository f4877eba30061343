/**
 * Names in an object are whatever its builder chose: control characters in them must not
 * reach a terminal (`kcm bpf dump`) or an error message unescaped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { symtab, writeElf } from '../../bench/hostile-elf.js';
import { KcmError, loadBpf } from '../../src/index.js';
import { encodeInsns } from '../../src/bpf/opcodes.js';
import { noControls, printable } from '../../src/bpf/printable.js';
import * as A from './asm.js';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

const CLEAR = '\x1b[2J\x1b[H';
const TITLE = '\x1b]0;owned\x07';

/** Two program sections and a function whose names carry terminal escapes. */
function hostileNames(): Uint8Array {
  const code = encodeInsns([A.mov64(0, 0), A.exit()]);
  const strtab = Uint8Array.from(Buffer.from(`\0fn${TITLE}\r\nforged line\0`, 'latin1'));
  return writeElf({
    sections: [
      { name: `socket${CLEAR}`, type: 1, flags: 6, data: code },
      { name: `prog\x9b31m`, type: 1, flags: 6, data: code },
      { name: '.symtab', type: 2, data: symtab([{ nameOffset: 1, value: 0, size: 16, type: 2, bind: 1, shndx: 1 }]), link: 4, entsize: 24 },
      { name: '.strtab', type: 3, data: strtab },
    ],
  });
}

test('printable escapes controls and backslashes; noControls leaves backslashes', () => {
  assert.equal(printable('a\x1b[2Jb\\c\x7f\x9b\n'), 'a\\x1b[2Jb\\\\c\\x7f\\x9b\\x0a');
  assert.equal(printable('.text'), '.text');
  assert.equal(noControls('x\\x1b\x1b'), 'x\\x1b\\x1b');
  assert.equal(noControls(printable('\x07\\')), printable('\x07\\'));
});

test('[F-1] refusals naming hostile sections and symbols carry no control characters', () => {
  const bytes = hostileNames();
  const messages: string[] = [];
  for (const options of [{}, { section: `nope${CLEAR}` }, { section: `socket${CLEAR}`, program: 'x' }]) {
    try {
      loadBpf(bytes, options);
      assert.fail('loaded');
    } catch (e) {
      assert.ok(e instanceof KcmError && e.code === 'EINVAL', String(e));
      messages.push(e.message);
    }
  }
  for (const m of messages) assert.doesNotMatch(m, CONTROL, JSON.stringify(m));
  assert.match(messages[0]!, /socket\\x1b\[2J\\x1b\[H, prog\\x9b31m/);
  assert.match(messages[2]!, /fn\\x1b\]0;owned\\x07\\x0d\\x0aforged line/);
  // The section that loads is found by its real name.
  assert.equal(loadBpf(bytes, { section: `socket${CLEAR}` })(Buffer.alloc(4)), 0);
});

test('[F-1] kcm bpf dump escapes names from the object', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kcm-names-'));
  try {
    const path = join(dir, 'hostile.o');
    writeFileSync(path, hostileNames());
    const res = spawnSync(process.execPath, [main, 'bpf', 'dump', path, '--section', `socket${CLEAR}`], { encoding: 'latin1', timeout: 20_000 });
    assert.equal(res.status, 0, res.stderr);
    assert.doesNotMatch(res.stdout + res.stderr, CONTROL);
    assert.match(res.stdout, /socket\\x1b\[2J\\x1b\[H/);
    assert.match(res.stdout, /<fn\\x1b\]0;owned\\x07\\x0d\\x0aforged line>/);
    const refused = spawnSync(process.execPath, [main, 'bpf', 'dump', path], { encoding: 'latin1', timeout: 20_000 });
    assert.equal(refused.status, 1);
    assert.doesNotMatch(refused.stdout + refused.stderr, CONTROL);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
