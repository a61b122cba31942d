/**
 * The demo chat's static files for `fullduplex serve`: the page (web/ at the
 * package root, shipped in the npm package) and the browser build of the
 * channels client. Only a fixed list of files is served, so no request path
 * ever reaches the file system.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

interface WebFile {
  /** Candidate locations, first existing wins: the built CLI (dist/cli/) and the sources (src/cli/) sit at different depths. */
  paths: string[];
  type: string;
}

const here = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));
const page = (name: string): string[] => [here(`../../web/${name}`)];
const clientBuild = [here('../client/fullduplex-client.min.js'), here('../../dist/client/fullduplex-client.min.js')];

/** URL path → file. The page imports the client as ./fullduplex-client.js. */
const FILES = new Map<string, WebFile>([
  ['/', { paths: page('index.html'), type: 'text/html; charset=utf-8' }],
  ['/index.html', { paths: page('index.html'), type: 'text/html; charset=utf-8' }],
  ['/chat.css', { paths: page('chat.css'), type: 'text/css; charset=utf-8' }],
  ['/chat.js', { paths: page('chat.js'), type: 'text/javascript; charset=utf-8' }],
  ['/fullduplex-client.js', { paths: clientBuild, type: 'text/javascript; charset=utf-8' }],
]);

/**
 * The page loads only its own files and talks only to its own origin (CSP
 * 'self' covers ws: to the same host, CSP3 §6.7.2.8); it may not be framed.
 */
const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // Small files that change with the package: revalidate rather than cache stale code.
  'Cache-Control': 'no-cache',
};

async function load(file: WebFile): Promise<Buffer> {
  let lastError: unknown;
  for (const path of file.paths) {
    try {
      return await readFile(path);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

/** Serves GET/HEAD of a demo file; false when `req` is for something else. */
export function serveWebFile(req: IncomingMessage, res: ServerResponse): boolean {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const file = FILES.get(q === -1 ? url : url.slice(0, q));
  if (file === undefined) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
    return true;
  }
  load(file).then(
    (body) => {
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': file.type, 'Content-Length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
    () => {
      // A package missing its files is an install problem, said plainly.
      res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('demo file missing from this installation\n');
    },
  );
  return true;
}
