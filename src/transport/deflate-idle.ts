/**
 * The timer behind permessage-deflate's idle release: one per process, not
 * per connection. While any codec holds zlib streams it calls
 * `releaseIdleDeflateContexts` every DEFLATE_IDLE_SWEEP_MS, so a connection
 * that sent and received nothing compressed for 2 to 4 s gives its
 * compressor and inflater back (about 230 KB with the defaults; the
 * protocol core says why that is allowed). It stops when none hold any, and
 * never keeps the process alive.
 */
import { onDeflateContextsLive, releaseIdleDeflateContexts } from '../protocol/deflate.js';

/**
 * The sweep interval. Short enough that idle memory is released soon (a
 * server with thousands of quiet tabs), long enough that a connection
 * messaging every second never pays for building streams again (about 50 µs
 * and the compression context of the first message after a pause).
 */
export const DEFLATE_IDLE_SWEEP_MS = 2000;

let timer: NodeJS.Timeout | null = null;
let watching = false;

function sweep(): void {
  if (releaseIdleDeflateContexts() === 0 && timer !== null) {
    clearInterval(timer);
    timer = null;
  }
}

function start(): void {
  if (timer !== null) return;
  timer = setInterval(sweep, DEFLATE_IDLE_SWEEP_MS);
  timer.unref();
}

/** Called by every link with a permessage-deflate codec: from then on, idle codecs are swept. */
export function watchDeflateIdle(): void {
  if (watching) return;
  watching = true;
  onDeflateContextsLive(start);
}
