/**
 * The channel layer as users get it from the built package (needs `npm run
 * build`, as scripts/test.sh does): `fullduplex/channels` and
 * `fullduplex/client` by name, as ESM and CommonJS, with bundled type
 * declarations, and the standalone browser module.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

// A ChannelServer and a Client from the package: connect, subscribe, publish, receive, exit 0.
const ROUND_TRIP = `
  const server = new ChannelServer({ channels: [{ match: '*', publish: true }] });
  server.listen(0).then(({ port }) => {
    const client = new Client('ws://127.0.0.1:' + port + '/channels', { WebSocket });
    const sub = client.subscribe('room');
    sub.on('publication', (p) => {
      if (p.data !== 'round trip') process.exit(3);
      client.disconnect();
      server.close().then(() => process.exit(0));
    });
    sub.on('subscribed', () => sub.publish('round trip').catch((e) => e.code === 499 || process.exit(6)));
    client.connect();
  });
  setTimeout(() => process.exit(5), 15000).unref();`;

describe('package: fullduplex/channels and fullduplex/client', () => {
  it('import as ESM by name and talk to each other', async () => {
    const code = `import { ChannelServer } from 'fullduplex/channels'; import { Client } from 'fullduplex/client'; import { WebSocket } from 'fullduplex'; ${ROUND_TRIP}`;
    await exec(process.execPath, ['--input-type=module', '-e', code], { cwd: root, timeout: 20_000 });
  });

  it('require as CommonJS by name and talk to each other', async () => {
    const code = `const { ChannelServer } = require('fullduplex/channels'); const { Client } = require('fullduplex/client'); const { WebSocket } = require('fullduplex'); ${ROUND_TRIP}`;
    await exec(process.execPath, ['--input-type=commonjs', '-e', code], { cwd: root, timeout: 20_000 });
  });

  it('ship bundled type declarations', () => {
    for (const [file, names] of [
      ['dist/channels/index.d.ts', ['declare class ChannelServer', 'interface ChannelStore']],
      ['dist/channels/index.d.cts', ['declare class ChannelServer']],
      ['dist/client/index.d.ts', ['declare class Client', 'interface ClientOptions']],
      ['dist/client/index.d.cts', ['declare class Client']],
    ] as const) {
      assert.ok(existsSync(root + file), `${file} missing`);
      const text = readFileSync(root + file, 'utf8');
      for (const name of names) assert.ok(text.includes(name), `${file} declares ${name}`);
      assert.doesNotMatch(text, /from '\.\.?\//, 'declarations must be bundled, not point at other files');
    }
  });

  it('ship the client as one standalone minified module for browsers', async () => {
    const pkg = JSON.parse(readFileSync(root + 'package.json', 'utf8')) as { exports: Record<string, unknown> };
    assert.equal(pkg.exports['./client/browser'], './dist/client/fullduplex-client.min.js');
    const code = readFileSync(root + 'dist/client/fullduplex-client.min.js', 'utf8');
    assert.doesNotMatch(code, /\bimport\s*[{*"'(]|\brequire\(/);
    const mod = (await import(pathToFileURL(root + 'dist/client/fullduplex-client.min.js').href)) as Record<string, unknown>;
    assert.equal(typeof mod.Client, 'function');
  });
});
