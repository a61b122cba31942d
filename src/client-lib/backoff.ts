/**
 * Reconnection delay: exponential backoff with "full jitter" (a uniformly
 * random delay between 0 and the capped exponential), which spreads a crowd
 * of clients that lost their server at the same moment (PROTOCOL.md §6).
 */
export function backoffDelay(attempt: number, min: number, max: number, random: () => number = Math.random): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
