/**
 * The client's transport link, made once the opening handshake succeeded:
 * moves bytes between the upgraded socket and the protocol core (see
 * transport/link.ts) and feeds what happens back to the session's WHATWG
 * steps. Every frame a client sends is masked (RFC 6455 §5.3) by the core.
 */
import type { Duplex } from 'node:stream';
import type { PerMessageDeflate } from '../protocol/deflate.js';
import type { ProtocolError } from '../protocol/errors.js';
import { Link } from '../transport/link.js';
import type { ResolvedOptions } from './options.js';
import type { ClientSession } from './session.js';

export class ClientLink extends Link {
  private readonly session: ClientSession;
  private readonly closeAfter: number;

  constructor(session: ClientSession, stream: Duplex, options: ResolvedOptions, deflate: PerMessageDeflate | null) {
    super(stream, { role: 'client', maxPayload: options.maxPayload, deflate: deflate ?? undefined });
    this.session = session;
    this.closeAfter = options.closeTimeout;
  }

  protected get closeTimeout(): number {
    return this.closeAfter;
  }

  // The WHATWG API has no backpressure signal but bufferedAmount, and a client
  // reads whatever its server sends.
  protected get highWaterMark(): number {
    return Infinity;
  }

  protected get readLimit(): number {
    return Infinity;
  }

  /** RFC 6455 §7.1.1: the server closes the TCP connection first; the client waits for it (bounded by the close timeout). */
  protected get closesFirst(): boolean {
    return false;
  }

  /** Bytes the stream still holds, or null once it is gone (for bufferedAmount). */
  get writableLength(): number | null {
    return this.isClosed ? null : this.stream.writableLength;
  }

  /** The close as the WHATWG close steps need it. */
  get closeInfo(): { code: number; reason: string; complete: boolean } {
    const { code, reason } = this.peerClose;
    return { code, reason, complete: this.conn.closeSent && this.conn.closeReceived };
  }

  /** Runs `fireOpen` (the open event) and parses `head` in one pass, so sends from open listeners leave in one write. */
  open(fireOpen: () => void, head: Buffer): void {
    this.withinPass(fireOpen);
    this.startLink(head);
  }

  sendText(text: string): boolean {
    if (!this.conn.sendText(text)) return false;
    this.queued();
    return true;
  }

  sendBytes(bytes: Uint8Array): boolean {
    if (!this.conn.sendBytes(bytes, true)) return false;
    this.queued();
    return true;
  }

  sendClose(code: number | undefined, reason: string): void {
    if (this.conn.close(code, reason)) this.queued();
  }

  /** While sends wait outside the core (a Blob being read), the close frame the core queues on its own waits too. */
  holdClose(hold: boolean): void {
    if (hold) {
      this.conn.holdClose = true;
    } else {
      this.conn.releaseClose();
      this.queued();
    }
  }

  fail(code: number, reason: string): void {
    this.conn.fail(code, reason);
    this.queued();
  }

  protected handlerThrew(error: unknown): void {
    // Listener exceptions never get here (EventTarget reports them); this is our own bug.
    this.session.failed(error instanceof Error ? error : new Error(String(error)));
  }

  protected override transportError(error: Error): void {
    // What the stream still held when it broke was never sent: counted
    // now, before Node empties the destroyed stream (WHATWG: bufferedAmount
    // is not reset when the connection closes).
    this.session.ledger.prune(this.stream.writableLength);
    // RFC 6455 §7.1.4: after the closing handshake the TCP close is clean however it happens.
    if (this.conn.closeSent && this.conn.closeReceived) return;
    this.session.failed(error);
  }

  protected transportClosed(): void {
    // After a closing handshake everything before our close frame reached
    // the peer. A stream cut short tells nothing any more (a closed stream's
    // writableLength is 0): what was in flight at the last count stays counted.
    if (this.conn.closeSent && this.conn.closeReceived) this.session.ledger.prune(0);
    this.session.linkClosed();
  }

  protected transportDrained(): void {}

  protected override flushed(bytes: number): void {
    this.session.ledger.flushed(bytes, this.stream.writableLength);
  }

  protected override discarded(): void {
    this.session.ledger.discarded();
  }

  // ConnectionEvents, called from inside conn.receive().

  onMessage(data: Buffer, isBinary: boolean): void {
    this.session.messageReceived(data, isBinary);
  }

  onPing(): void {
    // The pong is queued by the core and written at the end of this receive pass.
  }

  onPong(): void {}

  onPeerClose(): void {
    this.session.closingStarted();
  }

  onFail(error: ProtocolError): void {
    this.session.failed(error);
  }
}
