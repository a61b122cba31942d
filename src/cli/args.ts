/** Small helpers shared by the CLI commands. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

/** Parses argv with node:util, turning its errors into UsageError. */
export function parse<T extends ParseArgsConfig['options']>(args: string[], options: T, allowPositionals: boolean) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

/** A port: decimal digits only (Number() would take "", " ", "0x50" and "1e3"), 0-65535. */
export function parsePort(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = /^[0-9]{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 0 && n <= 65535)) throw new UsageError(`invalid port "${value}"`);
  return n;
}

/** A duration in ms: a non-negative decimal number (not "", which Number() reads as 0). */
export function parseMs(value: string | undefined, fallback: number): number | null {
  if (value === undefined) return fallback;
  if (value.trim() === '') return null;
  const n = Number(value);
  return n >= 0 ? n : null;
}

/** The longest delay a timer takes (2^31 - 1 ms, about 24.8 days); longer ones would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Lets the process's informational output go to a reader that went away
 * (`| head`): EPIPE on stdout is not a crash. `onClosed` runs once.
 */
export function tolerateClosedStdout(onClosed: () => void = () => {}): void {
  let closed = false;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (closed) return;
    closed = true;
    if (err.code !== 'EPIPE') process.stderr.write(`fullduplex: stdout: ${err.message}\n`);
    onClosed();
  });
}
