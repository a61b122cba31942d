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

export function parsePort(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`invalid port "${value}"`);
  return n;
}
