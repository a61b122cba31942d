/**
 * The `fullduplex/redis` subpath export as users get it (ESM, CommonJS and
 * types), and the core staying free of the optional peer dependency.
 * Needs `npm run build` first (scripts/test.sh does it).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

// Constructs a broker against a closed port, checks it is a Broker, closes it.
const CHECK = `
  const b = new RedisBroker({ url: 'redis://127.0.0.1:1', onError() {} });
  const fns = ['subscribe', 'unsubscribe', 'unsubscribeAll', 'subscriberCount', 'topics', 'publish', 'onSubscriptionChange', 'close'];
  console.log(fns.every((f) => typeof b[f] === 'function'), channelName('p', 'a:{b}'));
  b.close().then(() => process.exit(0));`;

describe('package: fullduplex/redis', () => {
  it('imports as ESM', async () => {
    const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', `import { RedisBroker, channelName } from 'fullduplex/redis'; ${CHECK}`], { cwd: root, timeout: 20_000 });
    assert.equal(stdout.trim(), 'true p:a%3A%7Bb%7D');
  });

  it('requires as CommonJS', async () => {
    const { stdout } = await exec(process.execPath, ['--input-type=commonjs', '-e', `const { RedisBroker, channelName } = require('fullduplex/redis'); ${CHECK}`], { cwd: root, timeout: 20_000 });
    assert.equal(stdout.trim(), 'true p:a%3A%7Bb%7D');
  });

  it('ships bundled type declarations', () => {
    for (const f of ['dist/redis/index.d.ts', 'dist/redis/index.d.cts']) {
      const text = readFileSync(root + f, 'utf8');
      assert.match(text, /declare class RedisBroker/);
    }
  });

  it('the core entry points never load @redis/client', () => {
    for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/cli/main.js']) {
      // An import or require of it (the CLI's help text may name the package).
      assert.doesNotMatch(readFileSync(root + f, 'utf8'), /(from\s*|require\(|import\()\s*["']@redis\/client["']/, f);
    }
    const pkg = JSON.parse(readFileSync(root + 'package.json', 'utf8')) as { peerDependenciesMeta?: Record<string, { optional?: boolean }> };
    assert.equal(pkg.peerDependenciesMeta?.['@redis/client']?.optional, true);
  });
});
