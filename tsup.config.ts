import { defineConfig, type Options } from 'tsup';

/**
 * The Node library entry points build together, so that their type
 * declarations share chunks: fullduplex/redis and fullduplex/channels then
 * name the very TopicMessage, Broker and WebSocketServer types of
 * fullduplex (built separately, each would declare its own copies, and a
 * RedisBroker would not type-check as the Broker a WebSocketServer takes).
 * The JavaScript stays unsplit: each entry carries what it uses.
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
  // The library and its Node subpath entries (fullduplex/redis loads the
  // optional peer dependency @redis/client, which stays external).
  library({ index: 'src/index.ts', 'redis/index': 'src/redis/index.ts', 'channels/index': 'src/channels/index.ts' }),
  // fullduplex/client (the channels client for Node and browsers) shares no types with the core.
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
