/**
 * `fullduplex connect URL`: an interactive client. Lines typed are sent as
 * text messages; received messages are printed with direction markers.
 * `--echo` sends every received message back with its type and exits when
 * the server closes.
 */
import { createInterface } from 'node:readline';
import { type CloseEvent, type MessageEvent, WebSocket } from '../index.js';
import { MAX_TIMER_MS, UsageError, parse, parseMs, tolerateClosedStdout } from './args.js';

const HELP = `Usage: fullduplex connect URL [options]

Opens a WebSocket connection. Lines typed are sent as text messages; received
messages are printed after "< " (binary ones as hex). End input (Ctrl-D) to
close the connection normally.

Options:
  -p, --protocol P        offer subprotocol P (repeatable)
  -H, --header 'K: V'     add a request header (repeatable)
  -o, --origin ORIGIN     send an Origin header
      --echo              echo every received message back; exit on the server's close
      --insecure          do not verify the server's TLS certificate (wss)
      --no-deflate        do not offer permessage-deflate (RFC 7692)
      --timeout MS        handshake timeout in milliseconds (default 10000)
      --wait MS           after end of input, wait up to MS for as many messages
                          as were sent before closing (default 2000)
  -q, --quiet             print only received messages
  -h, --help              show this help

Exit status: 0 after a clean close, 1 when the connection fails (handshake
refused, timeout, protocol error, connection lost), 2 for bad usage.
`;

/** Close codes that end a session normally. */
const NORMAL_CODES = new Set([1000, 1001, 1005]);

export async function connectCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(
      args,
      {
        protocol: { type: 'string', short: 'p', multiple: true },
        header: { type: 'string', short: 'H', multiple: true },
        origin: { type: 'string', short: 'o' },
        echo: { type: 'boolean' },
        insecure: { type: 'boolean' },
        'no-deflate': { type: 'boolean' },
        timeout: { type: 'string' },
        wait: { type: 'string' },
        quiet: { type: 'boolean', short: 'q' },
        help: { type: 'boolean', short: 'h' },
      },
      true,
    );
    if (parsed.values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    if (parsed.positionals.length !== 1) throw new UsageError('expected exactly one URL');
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`fullduplex connect: ${err.message}\n\n${HELP}`);
      return 2;
    }
    throw err;
  }
  const { values, positionals } = parsed;
  const url = positionals[0]!;

  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) {
      process.stderr.write(`fullduplex connect: invalid header "${h}" (expected "Name: value")\n`);
      return 2;
    }
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  const timeout = parseMs(values.timeout, 10_000);
  if (timeout === null || timeout === 0) {
    process.stderr.write(`fullduplex connect: invalid timeout "${values.timeout}"\n`);
    return 2;
  }

  const wait = parseMs(values.wait, 2000);
  if (wait === null) {
    process.stderr.write(`fullduplex connect: invalid wait "${values.wait}"\n`);
    return 2;
  }

  let ws: WebSocket;
  try {
    ws = new WebSocket(url, values.protocol ?? [], {
      headers,
      handshakeTimeout: timeout,
      ...(values.origin !== undefined ? { origin: values.origin } : {}),
      ...(values.insecure ? { tls: { rejectUnauthorized: false } } : {}),
      perMessageDeflate: values['no-deflate'] !== true,
    });
  } catch (err) {
    process.stderr.write(`fullduplex connect: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  ws.binaryType = 'nodebuffer';
  const quiet = values.quiet === true;
  const echo = values.echo === true;
  const info = (line: string): void => {
    if (!quiet) process.stderr.write(line + '\n');
  };

  return new Promise<number>((resolve) => {
    let failure: string | null = null;
    let rl: ReturnType<typeof createInterface> | null = null;
    let sent = 0;
    let received = 0;
    let inputEnded = false;
    let waitTimer: NodeJS.Timeout | null = null;
    // After end of input, close once the answers to what we sent are in (or the wait is over).
    const closeIfAnswered = (): void => {
      if (inputEnded && received >= sent && ws.readyState === WebSocket.OPEN) ws.close(1000);
    };
    // Ctrl-C closes the connection normally; a second one quits at once.
    let interrupted = false;
    const onSigint = (): void => {
      if (interrupted || ws.readyState !== WebSocket.OPEN) process.exit(130);
      interrupted = true;
      ws.close(1000);
    };
    process.on('SIGINT', onSigint);
    // The reader of the messages went away (`| head -1`): nobody needs the rest, close normally.
    tolerateClosedStdout(() => {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
    });

    ws.onopen = () => {
      const details = [ws.protocol ? `subprotocol: ${ws.protocol}` : '', ws.extensions ? `extensions: ${ws.extensions}` : ''].filter(Boolean);
      info(`connected to ${ws.url}${details.length > 0 ? ` (${details.join('; ')})` : ''}`);
      if (echo) return;
      rl = createInterface({ input: process.stdin, terminal: false });
      rl.on('line', (line) => {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(line);
        sent++;
        if (!quiet && process.stdin.isTTY !== true) info(`> ${line}`);
      });
      rl.on('close', () => {
        // End of input: close the connection normally.
        inputEnded = true;
        closeIfAnswered();
        if (ws.readyState === WebSocket.OPEN) {
          waitTimer = setTimeout(() => {
            if (ws.readyState === WebSocket.OPEN) ws.close(1000);
          }, Math.min(wait, MAX_TIMER_MS));
        }
      });
    };
    ws.onmessage = (event: MessageEvent<unknown>) => {
      const data = event.data as Buffer | string;
      if (typeof data === 'string') {
        // In echo mode (conformance runs send megabytes), long texts are shortened for display.
        process.stdout.write(`< ${echo && data.length > 1000 ? data.slice(0, 1000) + `… [${data.length} chars]` : data}\n`);
      } else {
        process.stdout.write(`< [binary ${data.length} bytes] ${data.subarray(0, 64).toString('hex')}${data.length > 64 ? '…' : ''}\n`);
      }
      received++;
      if (echo) ws.send(data);
      else closeIfAnswered();
    };
    ws.onerror = (event: Event) => {
      const message = (event as Event & { message?: string }).message;
      failure = message !== undefined && message !== '' ? message : 'connection error';
    };
    ws.onclose = (event: CloseEvent) => {
      process.off('SIGINT', onSigint);
      if (waitTimer !== null) clearTimeout(waitTimer);
      rl?.close();
      process.stdin.pause();
      const reason = event.reason ? ` (${event.reason})` : '';
      if (failure !== null) {
        process.stderr.write(`fullduplex connect: ${failure}\n`);
        resolve(1);
      } else if (!event.wasClean) {
        process.stderr.write(`fullduplex connect: connection closed abnormally, code ${event.code}${reason}\n`);
        resolve(1);
      } else if (!NORMAL_CODES.has(event.code)) {
        process.stderr.write(`fullduplex connect: closed with code ${event.code}${reason}\n`);
        resolve(1);
      } else {
        info(`closed: code ${event.code}${reason}`);
        resolve(0);
      }
    };
  });
}
