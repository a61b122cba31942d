/**
 * The accounting behind the client's `bufferedAmount` (WHATWG WebSockets §
 * bufferedAmount): application bytes passed to `send()` and not yet handed
 * to the network, framing excluded, plus everything sent after closing began
 * (which is never transmitted, yet stays counted).
 */
export class BufferedAmountLedger {
  /** Bytes of messages queued in the writer since the last flush. */
  private inWriter = 0;
  /** Bytes handed to the stream since it opened, framing included: the stream offset. */
  private written = 0;
  /** Flushes not yet known to be transmitted: pairs of (stream offset where it ends, application bytes in it). */
  private inFlight: number[] | null = null;
  private inFlightHead = 0;
  private inFlightBytes = 0;
  /** Bytes of sends held behind a Blob being read. */
  deferredBytes = 0;
  /** Bytes passed to send() that will never be sent (after closing began, or dropped). */
  private unsentBytes = 0;

  /** The amount, given how much of the flushed output the stream still holds (null once it is gone). */
  amount(writableLength: number | null): number {
    if (writableLength !== null) this.prune(writableLength);
    return this.inWriter + this.inFlightBytes + this.deferredBytes + this.unsentBytes;
  }

  /** `size` application bytes were queued in the writer. */
  queued(size: number): void {
    this.inWriter += size;
  }

  /** `size` application bytes will never be sent. */
  unsent(size: number): void {
    this.unsentBytes += size;
  }

  /** `bytes` of output (framing included) were handed to the stream. */
  flushed(bytes: number, writableLength: number): void {
    this.written += bytes;
    if (this.inWriter > 0) {
      this.prune(writableLength);
      (this.inFlight ??= []).push(this.written, this.inWriter);
      this.inFlightBytes += this.inWriter;
      this.inWriter = 0;
    }
  }

  /** The writer's output was dropped: its messages will never be sent. */
  discarded(): void {
    this.unsentBytes += this.inWriter;
    this.inWriter = 0;
  }

  /** Forgets flushes the stream has handed to the kernel (`writableLength` counts the rest). */
  prune(writableLength: number): void {
    const list = this.inFlight;
    if (list === null) return;
    const transmitted = this.written - writableLength;
    let h = this.inFlightHead;
    while (h < list.length && list[h]! <= transmitted) {
      this.inFlightBytes -= list[h + 1]!;
      h += 2;
    }
    if (h === list.length) {
      list.length = 0;
      h = 0;
    } else if (h >= 64 && h * 2 >= list.length) {
      // A peer that never quite catches up: drop the consumed prefix now and then.
      list.splice(0, h);
      h = 0;
    }
    this.inFlightHead = h;
  }
}
