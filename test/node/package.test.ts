/**
 * The built package as users get it: ESM and CommonJS entry points, bundled
 * type declarations, the `fullduplex` bin, and what `npm pack` ships.
 * Needs `npm run build` first (scripts/test.sh does it).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

// Starts a server, connects the package's own client, echoes one message, exits 0.
const ROUND_TRIP = `
  const server = new WebSocketServer({ handler: { message(ws, d, b) { ws.send(d, { binary: b }); } } });
  server.listen(0).then(({ port }) => {
    const ws = new WebSocket('ws://127.0.0.1:' + port);
    ws.onopen = () => ws.send('round trip');
    ws.onmessage = (e) => { if (e.data !== 'round trip') process.exit(3); ws.close(); };
    ws.onclose = (e) => server.close().then(() => process.exit(e.wasClean ? 0 : 4));
  });`;

describe('package', () => {
  it('imports as ESM by its name', async () => {
    const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', `import { WebSocketServer, WebSocket, CloseEvent } from 'fullduplex'; console.log(typeof WebSocketServer, typeof WebSocket, typeof CloseEvent); ${ROUND_TRIP}`], { cwd: root, timeout: 20_000 });
    assert.equal(stdout.trim(), 'function function function');
  });

  it('requires as CommonJS by its name', async () => {
    const { stdout } = await exec(process.execPath, ['--input-type=commonjs', '-e', `const { WebSocketServer, WebSocket, CloseEvent } = require('fullduplex'); console.log(typeof WebSocketServer, typeof WebSocket, typeof CloseEvent); ${ROUND_TRIP}`], { cwd: root, timeout: 20_000 });
    assert.equal(stdout.trim(), 'function function function');
  });

  it('ships bundled type declarations for both', () => {
    for (const f of ['dist/index.d.ts', 'dist/index.d.cts']) {
      assert.ok(existsSync(root + f), `${f} missing`);
      const text = readFileSync(root + f, 'utf8');
      assert.match(text, /declare class WebSocketServer/);
      assert.match(text, /declare class WebSocket\b/);
      // Bundled: nothing points into src/; types shared with the subpath
      // entries (fullduplex/redis) live in declaration chunks beside them, so
      // that both entries name the same TopicMessage and Broker.
      for (const [, spec] of text.matchAll(/from '(\.[^']+)'/g)) {
        assert.ok(spec !== undefined && /^\.\/[\w-]+\.c?js$/.test(spec), `${f} imports ${spec}: declarations must be bundled`);
        const chunk = root + 'dist/' + spec.slice(2).replace(/\.(c?)js$/, '.d.$1ts');
        assert.ok(existsSync(chunk), `${f} imports ${spec}, but ${chunk} is not in dist`);
        assert.doesNotMatch(readFileSync(chunk, 'utf8'), /from '\.\.?\/(?!([\w-]+\.c?js'))/, `${chunk} points outside dist`);
      }
    }
  });

  it('has a working fullduplex bin', async () => {
    const pkg = JSON.parse(readFileSync(root + 'package.json', 'utf8')) as { bin: Record<string, string> };
    const bin = pkg.bin['fullduplex'];
    assert.ok(bin !== undefined);
    assert.match(readFileSync(root + bin, 'utf8'), /^#!\/usr\/bin\/env node/);
    const { stdout } = await exec(process.execPath, [root + bin, '--help'], { timeout: 10_000 });
    assert.match(stdout, /serve/);
    assert.match(stdout, /connect/);
  });

  it('npm pack contains only what users need', async () => {
    const { stdout } = await exec('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, timeout: 60_000 });
    const [info] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
    assert.ok(info !== undefined);
    const paths = info.files.map((f) => f.path).sort();
    for (const p of paths) {
      assert.ok(/^(dist\/|web\/|README\.md$|LICENSE$|package\.json$)/.test(p), `unexpected file in the package: ${p}`);
    }
    // The demo chat page that `fullduplex serve` serves at /.
    for (const f of ['web/index.html', 'web/chat.js', 'web/chat.css']) assert.ok(paths.includes(f), `${f} missing from the package`);
    assert.ok(paths.includes('dist/index.js'));
    assert.ok(paths.includes('dist/index.cjs'));
    assert.ok(paths.includes('dist/cli/main.js'));
  });
});
