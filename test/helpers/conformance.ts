/**
 * Shared parts of the Autobahn-style conformance suites
 * (test/interop/client-conformance.test.ts, which plays the fuzzing server
 * against our client, and test/interop/server-conformance.test.ts, which
 * plays the fuzzing client against our server): the frames the raw peer
 * writes, the events it reads, and the strict judge of every frame the
 * endpoint under test sends (RFC 6455 §5). The two roles differ in which
 * way masking goes (§5.1): a kit or judge is made for one of them.
 */
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { buildFrame, closePayload } from './frames.js';

export const OP = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;
export const EMPTY = Buffer.alloc(0);

/** Each element is one TCP write; a number is a pause in milliseconds. */
export type Step = Buffer | number;

// ---------------------------------------------------------------------------
// Frames the raw peer sends (RFC 6455 §5.2)

export interface FrameOptions {
  fin?: boolean;
  /** RSV1-3 as a 3-bit number (4 = RSV1, 2 = RSV2, 1 = RSV3), as Autobahn numbers them. */
  rsv?: number;
  /** Mask the frame, or not, against the side's default (a test of the wrong side's frames). */
  mask?: boolean;
}

export interface FrameKit {
  frame(opcode: number, payload?: Buffer | string, options?: FrameOptions): Buffer;
  text(s: Buffer | string, o?: FrameOptions): Buffer;
  binary(b: Buffer, o?: FrameOptions): Buffer;
  cont(s: Buffer | string, o?: FrameOptions): Buffer;
  ping(s?: Buffer | string, o?: FrameOptions): Buffer;
  pong(s?: Buffer | string, o?: FrameOptions): Buffer;
  /** A close frame: no body when `code` is undefined; `reason` as raw bytes so it can be invalid. */
  close(code?: number, reason?: Buffer | string): Buffer;
  /** `payload` as a fragmented message: `opcode` first, then continuations, frames of `size` bytes. */
  fragments(opcode: number, payload: Buffer, size: number): Buffer[];
}

export interface FrameSide {
  /** Whether this side masks its frames by default (a client does, a server must not: §5.1). */
  masked: boolean;
  /** The masking key of each masked frame. */
  maskKey(): ArrayLike<number>;
}

/** The frame builders of one side of the connection. */
export function frameKit(side: FrameSide): FrameKit {
  const frame = (opcode: number, payload: Buffer | string = EMPTY, o: FrameOptions = {}): Buffer => {
    const rsv = o.rsv ?? 0;
    return buildFrame({
      opcode,
      payload,
      fin: o.fin ?? true,
      rsv1: (rsv & 4) !== 0,
      rsv2: (rsv & 2) !== 0,
      rsv3: (rsv & 1) !== 0,
      mask: (o.mask ?? side.masked) ? side.maskKey() : null,
    });
  };
  return {
    frame,
    text: (s, o) => frame(OP.text, s, o),
    binary: (b, o) => frame(OP.binary, b, o),
    cont: (s, o) => frame(OP.cont, s, o),
    ping: (s = EMPTY, o) => frame(OP.ping, s, o),
    pong: (s = EMPTY, o) => frame(OP.pong, s, o),
    close: (code, reason = EMPTY) => frame(OP.close, code === undefined ? EMPTY : closePayload(code, reason)),
    fragments(opcode, payload, size) {
      const parts = payload.length === 0 ? [EMPTY] : chop(payload, size);
      return parts.map((p, i) => frame(i === 0 ? opcode : OP.cont, p, { fin: i === parts.length - 1 }));
    },
  };
}

/** ASCII text of `n` bytes. */
export function ascii(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = 0x20 + (i % 95);
  return b;
}

export function chop(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

// ---------------------------------------------------------------------------
// What the endpoint under test sends, decoded

export type Received =
  | { type: 'message'; binary: boolean; data: Buffer }
  | { type: 'ping' | 'pong'; data: Buffer }
  | { type: 'close'; code: number | null; reason: string };

export const msg = (data: Buffer | string): Received => ({ type: 'message', binary: false, data: Buffer.from(data) });
export const bin = (data: Buffer): Received => ({ type: 'message', binary: true, data });
export const pongOf = (data: Buffer | string = EMPTY): Received => ({ type: 'pong', data: Buffer.from(data) });

export function show(e: Received): string {
  if (e.type === 'close') return `close(${e.code ?? 'no code'}${e.reason ? `, "${e.reason}"` : ''})`;
  const d = e.data.length <= 32 ? e.data.toString('hex') : `${e.data.length} bytes`;
  if (e.type === 'message') return `${e.binary ? 'binary' : 'text'}[${d}]`;
  return `${e.type}[${d}]`;
}

export function assertEvent(actual: Received, expected: Received, where: string): void {
  const same =
    show(actual).split('[')[0] === show(expected).split('[')[0] &&
    (actual.type === 'close' || expected.type === 'close' || actual.data.equals(expected.data));
  assert.ok(same, `${where}: expected ${show(expected)}, got ${show(actual)}`);
}

// ---------------------------------------------------------------------------
// The strict judge of the endpoint's frames

export interface JudgeOptions {
  /** §5.1: a client MUST mask every frame it sends; a server MUST NOT mask any. */
  expectMasked: boolean;
  /** Who sends the judged frames, as named in the violations. */
  sender: 'client' | 'server';
}

/** Judges each frame the endpoint under test sends, as a strict peer does (RFC 6455 §5), and records its events. */
export class FrameJudge {
  readonly violations: string[] = [];
  readonly events: Received[] = [];
  // A data message being assembled from fragments.
  private msgOpcode = 0;
  private msgParts: Buffer[] = [];
  private closed = false;

  constructor(private readonly options: JudgeOptions) {}

  /** The sender's close frame has been seen. */
  get closeSeen(): boolean {
    return this.closed;
  }

  frame(fin: boolean, rsv: number, opcode: number, masked: boolean, payload: Buffer): void {
    const v = this.violations;
    const name = `frame opcode 0x${opcode.toString(16)}`;
    // §5.1: the sender's side decides whether frames are masked.
    if (masked !== this.options.expectMasked) v.push(`${name} is ${masked ? '' : 'not '}masked`);
    // §5.2: RSV bits are 0 without an extension (none was negotiated).
    if (rsv !== 0) v.push(`${name} has RSV bits ${rsv}`);
    // §5.5.1: nothing after a close frame.
    if (this.closed) v.push(`${name} sent after the ${this.options.sender}'s close frame`);
    switch (opcode) {
      case OP.close:
      case OP.ping:
      case OP.pong: {
        // §5.5: control frames are not fragmented and carry at most 125 bytes.
        if (!fin) v.push(`${name} is fragmented`);
        if (payload.length > 125) v.push(`${name} carries ${payload.length} bytes`);
        if (opcode === OP.close) {
          this.closed = true;
          this.events.push(this.closeOf(payload));
        } else {
          this.events.push({ type: opcode === OP.ping ? 'ping' : 'pong', data: payload });
        }
        return;
      }
      case OP.text:
      case OP.binary:
        if (this.msgOpcode !== 0) v.push('new data frame while a fragmented message is in progress');
        this.msgOpcode = opcode;
        this.msgParts = [payload];
        break;
      case OP.cont:
        if (this.msgOpcode === 0) {
          v.push('continuation frame with no message started');
          return;
        }
        this.msgParts.push(payload);
        break;
      default:
        v.push(`reserved opcode 0x${opcode.toString(16)}`);
        return;
    }
    if (!fin) return;
    const data = this.msgParts.length === 1 ? (this.msgParts[0] ?? EMPTY) : Buffer.concat(this.msgParts);
    const isText = this.msgOpcode === OP.text;
    this.msgOpcode = 0;
    this.msgParts = [];
    // §8.1: text is UTF-8.
    if (isText && !isUtf8(data)) v.push('text message is not valid UTF-8');
    this.events.push({ type: 'message', binary: !isText, data });
  }

  /** The event of a close frame's payload, judged (§5.5.1, §7.4). */
  closeOf(payload: Buffer): Received {
    if (payload.length === 0) return { type: 'close', code: null, reason: '' };
    if (payload.length === 1) {
      this.violations.push('close frame with a 1-byte payload');
      return { type: 'close', code: null, reason: '' };
    }
    const code = payload.readUInt16BE(0);
    // §7.4: codes an endpoint may send.
    const sendable = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
    if (!sendable) this.violations.push(`close code ${code} may not be sent`);
    const reason = payload.subarray(2);
    if (!isUtf8(reason)) this.violations.push('close reason is not UTF-8');
    return { type: 'close', code, reason: reason.toString('utf8') };
  }
}
