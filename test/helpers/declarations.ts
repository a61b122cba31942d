/**
 * Reading a built entry point's type declarations the way a user's compiler
 * does: the entry file and the declaration chunks it imports (the Node
 * entries build together and share chunks, so every subpath names the same
 * core types). Asserts they are bundled: every relative import resolves to a
 * declaration file inside dist/, never to sources.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

export function readDeclarations(root: string, file: string): string {
  const seen = new Set<string>();
  const texts: string[] = [];
  const visit = (path: string): void => {
    if (seen.has(path)) return;
    seen.add(path);
    assert.ok(existsSync(path), `${relative(root, path)} is missing`);
    const text = readFileSync(path, 'utf8');
    texts.push(text);
    for (const [, spec] of text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
      assert.ok(spec !== undefined && /\.c?js$/.test(spec), `${relative(root, path)} imports ${spec}`);
      const target = join(dirname(path), spec.replace(/\.(c?)js$/, '.d.$1ts'));
      assert.ok(relative(join(root, 'dist'), target).startsWith('..') === false, `${relative(root, path)} imports ${spec}, outside dist: declarations must be bundled`);
      visit(target);
    }
  };
  visit(join(root, file));
  return texts.join('\n');
}
