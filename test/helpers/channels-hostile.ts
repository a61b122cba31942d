/**
 * Scaffolding for the hostile-client tests of the channel protocol over
 * WebSocket (test/node/channels-ws-hostile*.test.ts): channel rules and
 * limits that get out of a flood's way, an `authorize` hook that stalls
 * chosen channels (so commands stay in progress), and a raw subscriber for
 * clients `Peer` cannot play: one that stops reading or vanishes mid-stream.
 */
import type { TestContext } from 'node:test';
import { PROTOCOL } from '../../src/client-lib/types.js';
import type { Json, Peer } from './channels.js';
import { type RawPeer, rawOpen } from './raw-client.js';

export const CHAT = { match: 'chat:*', history: { size: 100, ttl: 60_000 }, presence: true, publish: true };
/** Limits no flood of a test reaches (the test is about something else). */
export const FAST = { publishRate: 100_000, publishBurst: 100_000, maxPending: 1000, maxErrors: 1000 };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** 1..n */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

/** An `authorize` hook that allows everything, after `ms` for channels starting with `prefix`. */
export function slowFor(prefix: string, ms: number) {
  return async (_client: unknown, _action: string, channel: string): Promise<boolean> => {
    if (channel.startsWith(prefix)) await sleep(ms);
    return true;
  };
}

export const errors = (p: Peer): Json[] => p.frames.filter((f) => f.type === 'error');
export const offsets = (p: Peer, channel: string): number[] => p.pubs(channel).map((f) => Number(f.offset));

/**
 * A raw channel peer (masked text frames written by hand) that sends
 * `connect` and a `subscribe` to `channel`, and, if `wait`, reads until the
 * subscribe's reply. Destroyed after the test.
 */
export async function rawSubscriber(t: TestContext, port: number, channel: string, wait = true): Promise<RawPeer> {
  const { peer } = await rawOpen(port, { path: '/channels', headers: { 'Sec-WebSocket-Protocol': PROTOCOL } });
  t.after(() => peer.destroy());
  for (const cmd of [{ id: 1, type: 'connect' }, { id: 2, type: 'subscribe', channel }]) {
    await peer.send({ opcode: 1, mask: [9, 8, 7, 6], payload: JSON.stringify(cmd) });
  }
  // The connected reply (and join pushes) come first.
  while (wait && !(await peer.readFrame()).payload.toString().startsWith('{"id":2,')) continue;
  return peer;
}

/**
 * Resumes a paused raw peer and keeps only what it needs to judge the end of
 * a big stream: the byte count and the last 4 KiB (no O(n²) re-joining).
 */
export function drainTail(peer: RawPeer): { readonly received: number; readonly tail: Buffer } {
  const state = { received: 0, tail: peer.release().subarray(-4096) };
  peer.socket.on('data', (c: Buffer) => {
    state.received += c.length;
    state.tail = Buffer.concat([state.tail, c]).subarray(-4096);
  });
  peer.socket.resume();
  return state;
}

/** The bytes of an unmasked close frame with `code` and `reason` (RFC 6455 §5.5.1), to find in a tail. */
export function closeFrameBytes(code: number, reason: string): Buffer {
  const payload = Buffer.concat([Buffer.from([code >> 8, code & 255]), Buffer.from(reason)]);
  return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
}
