/**
 * Keepalive: one timer per server sweeps every connection. A connection that
 * sent nothing since the last sweep is pinged (RFC 6455 §5.5.2); one whose
 * ping went unanswered, with no traffic at all, for `timeout` ms is
 * terminated.
 */
import type { KeepaliveOptions } from './types.js';

export interface KeepaliveTarget {
  keepaliveTick(now: number, timeout: number): boolean;
  readonly keepaliveExpired: boolean;
  terminate(): void;
}

export class Keepalive {
  private readonly options: KeepaliveOptions;
  private readonly targets: Iterable<KeepaliveTarget>;
  private timer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;

  constructor(options: KeepaliveOptions, targets: Iterable<KeepaliveTarget>) {
    this.options = options;
    this.targets = targets;
  }

  /** Starts sweeping (idempotent). The timer does not keep the process alive. */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.sweep(), this.options.interval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.timer = this.deadline = null;
  }

  private sweep(): void {
    const { timeout, interval } = this.options;
    const now = Date.now();
    let pinged = false;
    for (const t of this.targets) {
      if (!t.keepaliveTick(now, timeout)) t.terminate();
      else if (t.keepaliveExpired) pinged = true;
    }
    // A timeout within the interval ends before the next sweep, so a timer
    // enforces it for the pings of this sweep; a longer one (which would cut
    // short the pings of later sweeps) is enforced by the sweeps themselves.
    if (pinged && timeout <= interval && this.deadline === null) {
      this.deadline = setTimeout(() => {
        this.deadline = null;
        for (const t of this.targets) if (t.keepaliveExpired) t.terminate();
      }, timeout);
      this.deadline.unref();
    }
  }
}
