/**
 * The browser client's budget (issue 11): `fullduplex/client` bundled as one
 * standalone ES module, minified, must stay at most 8 KB gzipped. Built here
 * with esbuild (tsup's bundler) the way tsup.config.ts builds
 * dist/client/fullduplex-client.min.js, then loaded to prove it stands alone.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const BUDGET = 8 * 1024;

describe('fullduplex/client size', () => {
  it(`is one standalone ES module of at most ${BUDGET} bytes minified and gzipped`, async () => {
    const result = await build({
      entryPoints: [fileURLToPath(new URL('../../src/client-lib/index.ts', import.meta.url))],
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2020',
      write: false,
      logLevel: 'silent',
    });
    const file = result.outputFiles[0];
    assert.ok(file, 'one output file');
    const code = file.text;
    const gzipped = gzipSync(code, { level: 9 }).length;
    console.log(`client: ${code.length} bytes minified, ${gzipped} bytes gzipped (budget ${BUDGET})`);
    assert.ok(gzipped <= BUDGET, `${gzipped} bytes gzipped is over the budget`);
    // No imports: nothing to resolve in a browser.
    assert.doesNotMatch(code, /\bimport\s*[{*"'(]|\brequire\(/);
    const mod = (await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`)) as Record<string, unknown>;
    assert.equal(typeof mod.Client, 'function');
    assert.equal(mod.PROTOCOL, 'fullduplex.channels.v1');
  });
});
