import { defineConfig, type Options } from 'tsup';

/**
 * One build per library entry point, so that each gets its own bundled type
 * declarations (a build with several entries would share declaration chunks
 * between them, and dist/index.d.ts would point at other files).
 */
const library = (entry: Record<string, string>, extra: Options = {}): Options => ({
  entry,
  format: ['esm', 'cjs'],
  dts: true,
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  splitting: false,
  ...extra,
});

export default defineConfig([
  // The library: ESM and CommonJS side by side, with bundled type declarations.
  library({ index: 'src/index.ts' }, { clean: true }),
  // fullduplex/redis is an entry of its own so that only it loads the
  // optional peer dependency @redis/client (external: a peer dependency).
  library({ 'redis/index': 'src/redis/index.ts' }),
  // fullduplex/channels (the channel protocol server) and fullduplex/client (its client for Node and browsers).
  library({ 'channels/index': 'src/channels/index.ts' }),
  library({ 'client/index': 'src/client-lib/index.ts' }),
  {
    // The channels client as one minified ES module for browsers (<script type="module">), no dependencies.
    entry: { 'client/fullduplex-client.min': 'src/client-lib/index.ts' },
    format: ['esm'],
    target: 'es2020',
    platform: 'browser',
    minify: true,
    sourcemap: true,
    splitting: false,
  },
  {
    // The command-line tool, on the public API: dist/index.js is loaded, not bundled again;
    // so is dist/redis/index.js, imported only by `serve --redis`.
    entry: { 'cli/main': 'src/cli/main.ts' },
    external: ['../index.js', '../redis/index.js'],
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    banner: { js: '#!/usr/bin/env node' },
    splitting: false,
  },
]);
