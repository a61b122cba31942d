/** Checks of numeric options shared by the server and the client. */

/** Largest message accepted by default, in bytes, on both sides. */
export const DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024;
/** Milliseconds to wait for the peer's close frame or FIN, by default, on both sides. */
export const DEFAULT_CLOSE_TIMEOUT = 5_000;

/** `value` when it is a positive number, `fallback` when undefined; TypeError otherwise (naming the option). */
export function positiveOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0)) throw new TypeError(`options.${name} must be a positive number; got ${String(value)}`);
  return value;
}
