/**
 * Errors produced by the protocol core.
 *
 * A peer that breaks the protocol never makes the core throw: the violation
 * becomes a `ProtocolError` value carrying the close code the connection is
 * failed with (RFC 6455 §7.1.7) and a reason a human can read.
 */
export class ProtocolError extends Error {
  /** The close status code the connection is failed with (RFC 6455 §7.4.1). */
  readonly closeCode: number;

  constructor(closeCode: number, reason: string) {
    super(reason);
    this.name = 'ProtocolError';
    this.closeCode = closeCode;
  }
}
