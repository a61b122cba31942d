import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // The library: ESM and CommonJS side by side, with bundled type declarations.
    // fullduplex/redis is an entry of its own so that only it loads the
    // optional peer dependency @redis/client (external: a peer dependency).
    entry: { index: 'src/index.ts', 'redis/index': 'src/redis/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    clean: true,
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
