// The load generator's WebSocket client side: prebuilt client frames, the
// upgrade request and the check of the server's answer, and `Conn`, one
// connection with an incremental parser that checks every payload byte
// against what the workload expects, in place, without copies.
import net from 'node:net';
import { BENCH_KEY, acceptFor } from './payload.mjs';
import { DEFLATE_OFFER, parseDeflateResponse, MessageInflater } from './deflate.mjs';

/** A client frame (masked unless `unmasked`): FIN set, one opcode, one payload. */
export function buildFrame(opcode, payload, maskSeed, unmasked = false) {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const mask = unmasked ? 0 : 4;
  const frame = Buffer.allocUnsafe(2 + ext + mask + len);
  frame[0] = 0x80 | opcode;
  frame[1] = (unmasked ? 0 : 0x80) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) frame.writeUInt16BE(len, 2);
  else if (ext === 8) frame.writeBigUInt64BE(BigInt(len), 2);
  let p = 2 + ext;
  if (unmasked) {
    payload.copy(frame, p);
    return frame;
  }
  const key = [(maskSeed * 37 + 11) & 0xff, (maskSeed * 53 + 29) & 0xff, (maskSeed * 71 + 101) & 0xff, (maskSeed * 13 + 197) & 0xff];
  frame[p] = key[0]; frame[p + 1] = key[1]; frame[p + 2] = key[2]; frame[p + 3] = key[3];
  p += 4;
  for (let i = 0; i < len; i++) frame[p + i] = payload[i] ^ key[i & 3];
  return frame;
}

/** Every socket reads into this one buffer (see Conn). */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export const OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10;

const TARGET = '127.0.0.1';

/** What every connection shares; set once by configure(). */
const cfg = { port: 0, raw: false, sources: 1, deflate: false, fail: (msg) => { throw new Error(msg); }, request: Buffer.alloc(0) };

/**
 * port: the server's (on 127.0.0.1, the only address ever targeted);
 * raw: no handshake (a plain TCP echo); sources: local addresses
 * 127.0.0.1..N to spread connections over; fail(msg): ends the process;
 * deflate: offer permessage-deflate (lib/deflate.mjs) and require it.
 */
export function configure({ port, raw, sources, fail, deflate = false }) {
  Object.assign(cfg, { port, raw, sources, fail, deflate });
  cfg.request = Buffer.from(
    'GET / HTTP/1.1\r\n' +
      `Host: ${TARGET}:${port}\r\n` +
      'Upgrade: websocket\r\n' +
      'Connection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${BENCH_KEY}\r\n` +
      'Sec-WebSocket-Version: 13\r\n' +
      (deflate ? `Sec-WebSocket-Extensions: ${DEFLATE_OFFER}\r\n` : '') +
      '\r\n',
    'latin1',
  );
}

/** The upgrade request every connection sends (fixed key). */
export const upgradeRequest = () => cfg.request;

const EXPECTED_ACCEPT = acceptFor(BENCH_KEY);
/** A masked close frame, code 1000, no reason. */
export const CLOSE_FRAME = buildFrame(OP_CLOSE, Buffer.from([0x03, 0xe8]), 7);

/**
 * Checks a server handshake response head: { error } or { deflate }, the
 * negotiated permessage-deflate parameters when it was offered (else null).
 */
function checkResponseHead(head) {
  const err = (error) => ({ error, deflate: null });
  const lines = head.split('\r\n');
  if (!/^HTTP\/1\.1 101 /.test(lines[0] + ' ')) return err(`expected 101, got "${lines[0]}"`);
  const headers = new Map();
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(':');
    if (c <= 0) continue;
    const name = lines[i].slice(0, c).trim().toLowerCase();
    const value = lines[i].slice(c + 1).trim();
    // Repeated header lines are one comma-separated list (RFC 9110 §5.3).
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  if ((headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') return err('missing "Upgrade: websocket"');
  if (!/\bupgrade\b/i.test(headers.get('connection') ?? '')) return err('missing "Connection: Upgrade"');
  if (headers.get('sec-websocket-accept') !== EXPECTED_ACCEPT) {
    return err(`bad Sec-WebSocket-Accept "${headers.get('sec-websocket-accept')}" (expected ${EXPECTED_ACCEPT})`);
  }
  if (!cfg.deflate) {
    if (headers.has('sec-websocket-extensions')) return err('server accepted an extension that was never offered');
    return { error: null, deflate: null };
  }
  const { params, error } = parseDeflateResponse(headers.get('sec-websocket-extensions'));
  return error ? err(error) : { error: null, deflate: params };
}

let nextSource = 0;
/** The next local address to bind, or undefined (let the kernel pick) with one source. */
export function sourceAddress() {
  if (cfg.sources <= 1) return undefined;
  return `127.0.0.${1 + (nextSource++ % cfg.sources)}`;
}

/**
 * One client connection: handshake, then an incremental parser over the
 * server's frames. Data payload bytes are compared in place against
 * `expected(conn)` (no copies, no concatenation); frames may be split across
 * chunks anywhere, and one chunk may hold many frames. With permessage-deflate
 * negotiated, a message with RSV1 is copied out, inflated by the connection's
 * one inflater (context takeover) and compared after inflating; messages
 * still count in the order they arrived.
 */
export class Conn {
  constructor(id, hooks) {
    this.id = id;
    this.hooks = hooks; // { expected(c), message(c), open(c), closeFrame(c, code), socketClose(c, hadError) }
    this.open = false;
    this.head = ''; // response head so far (handshake)
    // parser state
    this.inPayload = false;
    this.hbuf = Buffer.allocUnsafe(14);
    this.hlen = 0;
    this.op = 0;
    this.fin = false;
    this.remain = 0;
    this.inMessage = false;
    this.expectedBuf = null;
    this.msgPos = 0;
    this.ctrl = null; // control frame payload being gathered
    this.ctrlPos = 0;
    this.started = 0; // data messages whose first frame has arrived
    this.msgIndex = 0; // the current message's number on this connection
    // permessage-deflate (cfg.deflate): negotiated parameters, the inflater,
    // the current message's compressed pieces, and the messages not yet
    // counted (in arrival order: a plain one after a compressed one that is
    // still inflating waits for it)
    this.deflate = null;
    this.inflater = null;
    this.compressed = false;
    this.zParts = null;
    this.pending = []; // { index, expected, pos, done } per message not yet counted
    this.inflating = []; // the compressed ones among them, in order
    this.wireBytes = 0; // data frame payload bytes received (compressed size)
    this.compressedMessages = 0;
    this.plainMessages = 0;
    // workload state, used by the modes
    this.sent = 0;
    this.received = 0;
    this.owed = 0;
    this.t0 = 0n;
    this.gotClose = false;

    // `onread` with one shared buffer skips the stream machinery and a Buffer
    // allocation per read; safe because every read is consumed synchronously
    // (the parser copies only split headers and control payloads).
    const sock = net.connect({
      port: cfg.port,
      host: TARGET,
      localAddress: sourceAddress(),
      onread: { buffer: READ_BUFFER, callback: (nread, buf) => this.onData(buf, nread) },
    });
    this.sock = sock;
    sock.setNoDelay(true);
    sock.on('connect', () => {
      if (cfg.raw) {
        this.open = true;
        hooks.open(this);
      } else {
        sock.write(cfg.request);
      }
    });
    sock.on('error', (err) => {
      if (!this.hooks.ignoreErrors) cfg.fail(`connection ${id}: socket error: ${err.code ?? err.message}`);
    });
    sock.on('close', (hadError) => hooks.socketClose(this, hadError));
  }

  onData(buf, nread) {
    if (!this.open) {
      // Handshake: the head normally arrives whole, but may be split, and
      // frames may follow it in the same read.
      this.head += buf.latin1Slice(0, nread);
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.head.length > 8192) cfg.fail(`connection ${this.id}: handshake response head over 8 KiB`);
        return;
      }
      const { error, deflate } = checkResponseHead(this.head.slice(0, end));
      if (error) cfg.fail(`connection ${this.id}: handshake: ${error}`);
      if (deflate) {
        this.deflate = deflate;
        this.inflater = new MessageInflater(
          (chunk) => this.inflated(chunk),
          (e) => cfg.fail(`connection ${this.id}: the server's compressed message #${this.inflating[0]?.index} does not inflate: ${e.message}`),
        );
      }
      const restLen = this.head.length - end - 4;
      this.head = '';
      this.open = true;
      this.hooks.open(this);
      if (restLen > 0) this.feed(buf, nread - restLen, nread);
    } else {
      this.feed(buf, 0, nread);
    }
    if (this.owed > 0) this.hooks.flush(this);
  }

  /** Parses chunk[start, len): any number of frames or pieces of frames. */
  feed(chunk, start, len) {
    let o = start;
    while (o < len) {
      if (!this.inPayload) {
        // Fast path: the whole header is in this chunk.
        if (this.hlen === 0 && len - o >= 2) {
          const b1 = chunk[o + 1];
          const l7 = b1 & 0x7f;
          const hsize = (l7 < 126 ? 2 : l7 === 126 ? 4 : 10) + (b1 & 0x80 ? 4 : 0);
          if (len - o >= hsize) {
            this.header(chunk, o);
            o += hsize;
            continue;
          }
        }
        // Slow path: gather the header across chunks.
        if (this.hlen < 2) {
          const n = Math.min(2 - this.hlen, len - o);
          chunk.copy(this.hbuf, this.hlen, o, o + n);
          this.hlen += n;
          o += n;
          if (this.hlen < 2) return;
        }
        const b1 = this.hbuf[1];
        const l7 = b1 & 0x7f;
        const hsize = (l7 < 126 ? 2 : l7 === 126 ? 4 : 10) + (b1 & 0x80 ? 4 : 0);
        const n = Math.min(hsize - this.hlen, len - o);
        chunk.copy(this.hbuf, this.hlen, o, o + n);
        this.hlen += n;
        o += n;
        if (this.hlen < hsize) return;
        this.hlen = 0;
        this.header(this.hbuf, 0);
        continue;
      }
      const n = Math.min(this.remain, len - o);
      if (this.ctrl !== null) {
        chunk.copy(this.ctrl, this.ctrlPos, o, o + n);
        this.ctrlPos += n;
      } else if (this.compressed) {
        // a copy: the read buffer is shared and reused by the next read
        this.zParts.push(Buffer.from(chunk.subarray(o, o + n)));
      } else {
        const exp = this.expectedBuf;
        const p = this.msgPos;
        if (n <= 32) {
          for (let i = 0; i < n; i++) {
            if (chunk[o + i] !== exp[p + i]) this.mismatch(p + i, chunk[o + i]);
          }
        } else if (chunk.compare(exp, p, p + n, o, o + n) !== 0) {
          let i = 0;
          while (chunk[o + i] === exp[p + i]) i++;
          this.mismatch(p + i, chunk[o + i]);
        }
        this.msgPos = p + n;
      }
      this.remain -= n;
      o += n;
      if (this.remain === 0) {
        this.inPayload = false;
        this.frameDone();
      }
    }
  }

  mismatch(offset, got, index = this.msgIndex, expected = this.expectedBuf, how = '') {
    cfg.fail(
      `connection ${this.id}: echoed payload differs from what was sent: message #${index} ` +
        `byte ${offset}${how} is 0x${got.toString(16)}, expected 0x${expected[offset].toString(16)}`,
    );
  }

  /** Decodes and checks a frame header that starts at buf[o]. */
  header(buf, o) {
    const b0 = buf[o];
    const b1 = buf[o + 1];
    const l7 = b1 & 0x7f;
    let plen = l7;
    let p = o + 2;
    if (l7 === 126) {
      plen = buf.readUInt16BE(p);
      p += 2;
    } else if (l7 === 127) {
      const hi = buf.readUInt32BE(p);
      if (hi > 0x1fffff) cfg.fail(`connection ${this.id}: frame length over 2^53`);
      plen = hi * 0x100000000 + buf.readUInt32BE(p + 4);
      p += 8;
    }
    if (b1 & 0x80) cfg.fail(`connection ${this.id}: server frame is masked (RFC 6455 §5.1)`);
    const op = b0 & 0x0f;
    const rsv = b0 & 0x70;
    if (rsv !== 0) {
      if (this.deflate === null) cfg.fail(`connection ${this.id}: RSV bits set without an extension (RFC 6455 §5.2)`);
      if (rsv !== 0x40) cfg.fail(`connection ${this.id}: RSV2 or RSV3 set; only permessage-deflate (RSV1) was negotiated (RFC 6455 §5.2)`);
      if (op !== OP_TEXT && op !== OP_BINARY) cfg.fail(`connection ${this.id}: RSV1 on a ${op === OP_CONT ? 'continuation' : 'control'} frame (RFC 7692 §6.1)`);
    }
    const fin = (b0 & 0x80) !== 0;
    this.op = op;
    this.fin = fin;
    this.remain = plen;
    if (op === OP_TEXT || op === OP_BINARY || op === OP_CONT) {
      if (op === OP_CONT) {
        if (!this.inMessage) cfg.fail(`connection ${this.id}: continuation frame outside a message`);
      } else {
        if (this.inMessage) cfg.fail(`connection ${this.id}: new data frame inside a fragmented message`);
        this.inMessage = true;
        // the message's index: equal to this.received unless compressed
        // messages before it are still being inflated
        this.msgIndex = this.started++;
        this.expectedBuf = this.hooks.expected(this, this.msgIndex);
        if (this.expectedBuf === null) cfg.fail(`connection ${this.id}: unexpected data message #${this.msgIndex}`);
        if (op !== this.hooks.opcode) cfg.fail(`connection ${this.id}: message opcode ${op}, expected ${this.hooks.opcode}`);
        this.msgPos = 0;
        this.compressed = rsv !== 0;
        if (this.compressed) this.zParts = [];
      }
      this.wireBytes += plen;
      if (!this.compressed && this.msgPos + plen > this.expectedBuf.length) {
        cfg.fail(`connection ${this.id}: echoed message #${this.msgIndex} is longer than the ${this.expectedBuf.length} bytes sent`);
      }
      this.ctrl = null;
    } else if (op === OP_CLOSE || op === OP_PING || op === OP_PONG) {
      if (!fin || plen > 125) cfg.fail(`connection ${this.id}: bad control frame (RFC 6455 §5.5)`);
      this.ctrl = Buffer.allocUnsafe(plen);
      this.ctrlPos = 0;
    } else {
      cfg.fail(`connection ${this.id}: reserved opcode ${op}`);
    }
    if (plen > 0) this.inPayload = true;
    else this.frameDone();
  }

  frameDone() {
    const op = this.op;
    if (op <= OP_BINARY) {
      if (!this.fin) return;
      this.inMessage = false;
      if (this.compressed) {
        // Checked when inflated (asynchronously, on zlib's thread pool), in order.
        const entry = { index: this.msgIndex, expected: this.expectedBuf, pos: 0, done: false };
        this.pending.push(entry);
        this.inflating.push(entry);
        this.compressedMessages++;
        const parts = this.zParts;
        this.zParts = null;
        this.compressed = false;
        this.inflater.message(parts, () => this.inflateDone(entry));
        return;
      }
      if (this.msgPos !== this.expectedBuf.length) {
        cfg.fail(`connection ${this.id}: echoed message #${this.msgIndex} has ${this.msgPos} bytes, ${this.expectedBuf.length} were sent`);
      }
      if (this.deflate !== null) this.plainMessages++;
      if (this.pending.length > 0) {
        this.pending.push({ index: this.msgIndex, done: true });
        return;
      }
      this.received++;
      this.hooks.message(this);
      return;
    }
    const payload = this.ctrl;
    this.ctrl = null;
    if (op === OP_PING) {
      // Servers run with keepalive off, but answer anyway (RFC 6455 §5.5.2).
      this.sock.write(buildFrame(OP_PONG, payload, 3));
    } else if (op === OP_CLOSE) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      this.gotClose = true;
      this.hooks.closeFrame(this, code);
    }
  }

  /** Inflated bytes of the oldest compressed message still inflating: compared with what was sent. */
  inflated(chunk) {
    const e = this.inflating[0];
    if (e === undefined) cfg.fail(`connection ${this.id}: inflater output with no compressed message pending`);
    const exp = e.expected;
    const p = e.pos;
    const n = chunk.length;
    if (p + n > exp.length) cfg.fail(`connection ${this.id}: echoed message #${e.index} inflates to more than the ${exp.length} bytes sent`);
    if (chunk.compare(exp, p, p + n) !== 0) {
      let i = 0;
      while (chunk[i] === exp[p + i]) i++;
      this.mismatch(p + i, chunk[i], e.index, exp, ' (after inflating)');
    }
    e.pos = p + n;
  }

  /** All output of the oldest compressed message is in: check its length, count what is complete. */
  inflateDone(entry) {
    if (this.inflating.shift() !== entry) cfg.fail(`connection ${this.id}: inflater finished messages out of order`);
    if (entry.pos !== entry.expected.length) {
      cfg.fail(`connection ${this.id}: echoed message #${entry.index} inflates to ${entry.pos} bytes, ${entry.expected.length} were sent`);
    }
    entry.done = true;
    while (this.pending.length > 0 && this.pending[0].done) {
      this.pending.shift();
      this.received++;
      this.hooks.message(this);
    }
    if (this.owed > 0) this.hooks.flush(this);
  }
}
