/**
 * The package as a user gets it: `npm pack`, the tarball installed in a scratch project
 * under the system's temporary folder (offline: kcm has no runtime dependency), and there
 * the commands the README and docs tell a user to run.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blockAfter, cSnippets, hasClang } from '../cli/snippets.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The environment of a user's shell: none of the npm variables of the `npm test` running us. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|NODE_TEST_CONTEXT$|INIT_CWD$)/i.test(k)) env[k] = v;
  env.npm_config_update_notifier = 'false';
  env.npm_config_fund = 'false';
  env.npm_config_audit = 'false';
  return env;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, bounded in time; a timeout fails with what it printed. */
function sh(cmd: string, args: readonly string[], cwd: string, timeout = 60_000): Run {
  const r = spawnSync(cmd, args, { cwd, env: userEnv(), encoding: 'utf8', timeout, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 });
  if (r.error !== undefined) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(r: Run, what: string): string {
  assert.equal(r.status, 0, `${what} exited ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

interface PackFile {
  path: string;
}

function packList(extra: string[], cwd: string): { filename: string; files: PackFile[] } {
  const out = ok(sh('npm', ['pack', '--json', '--ignore-scripts', ...extra], cwd), 'npm pack');
  const parsed = JSON.parse(out.slice(out.indexOf('['))) as { filename: string; files: PackFile[] }[];
  return parsed[0]!;
}

function scratch(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('npm pack --dry-run ships no benchmark kcm bench does not load, and no source map without its source', () => {
  const files = packList(['--dry-run'], ROOT).files.map((f) => f.path);
  const shipped = new Set(files);
  for (const need of ['package.json', 'README.md', 'bpf/kcm.h', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'docs/bpf.md']) {
    assert.ok(shipped.has(need), `the package ships ${need}`);
  }
  // kcm bench ships under dist/src/cli/bench; the project's own benchmarks stay out.
  assert.deepEqual(files.filter((f) => f.startsWith('dist/bench/')), [], 'no file of bench/');
  assert.ok(shipped.has('dist/src/cli/bench/peer.js') && shipped.has('dist/src/cli/bench/thrift-object.js'), 'what kcm bench runs is shipped');
  assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('test/')), 'no tests');
  for (const map of files.filter((f) => f.endsWith('.map'))) {
    const { sources } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as { sources: string[] };
    for (const s of sources) {
      const source = join(map, '..', s);
      assert.ok(shipped.has(source), `${map} points at ${source}, which is shipped`);
    }
  }
});

test('the packed tarball, installed in a scratch project, runs what the docs show', { timeout: 300_000 }, async (t) => {
  const work = scratch(t, 'kcm-pack-');
  const { filename } = packList(['--pack-destination', work], ROOT);
  const tarball = join(work, filename);
  assert.ok(existsSync(tarball), `npm pack wrote ${tarball}`);

  const project = join(work, 'project');
  ok(sh('mkdir', ['-p', project], work), 'mkdir');
  writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'scratch', version: '1.0.0', private: true }, null, 2)}\n`);
  ok(sh('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], project, 120_000), 'npm install of the tarball');
  assert.ok(existsSync(join(project, 'node_modules', 'kcm', 'dist', 'src', 'index.d.ts')), 'types are installed');

  await t.test('npx kcm --version prints the version', () => {
    assert.equal(ok(sh('npx', ['kcm', '--version'], project), 'npx kcm --version'), `${VERSION}\n`);
  });

  await t.test('import of kcm', () => {
    writeFileSync(
      join(project, 'esm.mjs'),
      "import { KcmSocket, KcmError, lengthField, loadBpf } from 'kcm';\n" +
        'const sock = KcmSocket.create();\n' +
        "console.log(typeof lengthField({ size: 4 }), typeof loadBpf, new KcmError('EINVAL').code, sock.type);\n" +
        'sock.close();\n',
    );
    assert.equal(ok(sh(process.execPath, ['esm.mjs'], project), 'import'), 'function function EINVAL dgram\n');
  });

  await t.test('require of kcm', () => {
    writeFileSync(
      join(project, 'cjs.cjs'),
      "const { KcmSocket, lengthField } = require('kcm');\n" +
        'const sock = KcmSocket.create();\n' +
        'console.log(typeof lengthField({ size: 4 }), sock.type);\n' +
        'sock.close();\n',
    );
    assert.equal(ok(sh(process.execPath, ['cjs.cjs'], project), 'require'), 'function dgram\n');
  });

  await t.test('the walkthrough of the docs runs as its page says', () => {
    const page = readFileSync(join(project, 'node_modules', 'kcm', 'docs', 'walkthrough.md'), 'utf8');
    writeFileSync(join(project, 'service.mjs'), blockAfter(page, '## The program', 'js'));
    assert.equal(ok(sh(process.execPath, ['service.mjs'], project, 30_000), 'node service.mjs'), blockAfter(page, 'It prints:', ''));
  });

  await t.test('npx kcm demo --seconds 1 checks every echo', () => {
    const out = ok(sh('npx', ['kcm', 'demo', '--seconds', '1'], project), 'npx kcm demo');
    assert.match(out, /^-- server: /m);
    assert.match(out, /^ok: all \d+ echoes came back intact/m);
  });

  await t.test('npx kcm bench --quick prints the comparison for users, no goals', () => {
    const r = sh('npx', ['kcm', 'bench', '--quick'], project, 180_000);
    const out = ok(r, 'npx kcm bench --quick');
    assert.match(out, / vs net/);
    assert.doesNotMatch(out + r.stderr, /missed|goal/i);
    // The scratch project has no zeromq: the comparison says how to add it.
    assert.match(out, /^note: zeromq is not installed: npm install zeromq to compare against ZeroMQ$/m);
  });

  await t.test('npx kcm bench runs its eBPF contender from the package', () => {
    const r = sh('npx', ['kcm', 'bench', '--quick', '--contenders', 'kcm,kcm-bpf,net', '--sizes', '256', '--connections', '1'], project, 180_000);
    const out = ok(r, 'npx kcm bench --quick --contenders kcm,kcm-bpf,net');
    assert.match(out, /^256 B +1 +kcm-bpf +[\d.]+/m, 'the eBPF contender runs from the package');
    assert.doesNotMatch(out + r.stderr, /missed|goal/i);
  });

  await t.test("the docs' C snippets build against the shipped header and run with kcm bpf run", (t) => {
    if (!hasClang()) {
      t.skip('clang is not installed (Debian: apt-get install clang)');
      return;
    }
    const include = ok(sh('npx', ['kcm', 'bpf', 'include'], project), 'npx kcm bpf include').trimEnd();
    assert.equal(include, join(project, 'node_modules', 'kcm', 'bpf'));
    const snippets = cSnippets(join(project, 'node_modules', 'kcm', 'docs'));
    assert.ok(snippets.length > 0, 'the docs have a C example');
    for (const s of snippets) {
      const src = join(project, `snippet${s.index}.c`);
      const obj = join(project, `snippet${s.index}.o`);
      writeFileSync(src, s.code);
      ok(sh('clang', ['-O2', '-target', 'bpf', '-I', include, '-c', src, '-o', obj], project), `clang on ${s.where}`);
      // A Thrift header announcing a 5-byte body: the docs' example answers length 9.
      const result = ok(sh('npx', ['kcm', 'bpf', 'run', obj, '--hex', '00 00 00 05'], project), `kcm bpf run on ${s.where}`);
      assert.match(result, /^(length \d+|need more \(0\)|error -\d+.*)\n$/, `${s.where}: ${result}`);
      if (/thrift/i.test(s.code)) {
        assert.equal(result, 'length 9\n', s.where);
        // docs/bpf.md: npx kcm demo --parser thrift.o
        const demo = ok(sh('npx', ['kcm', 'demo', '--parser', obj, '--seconds', '0.5', '--size', '1k'], project), `kcm demo --parser ${s.where}`);
        assert.match(demo, /^ok: all \d+ echoes came back intact/m);
      }
    }
  });
});
