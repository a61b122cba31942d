/**
 * The `fullduplex` command line: `serve`, `connect` (and more to come).
 */
import { connectCommand } from './connect.js';
import { serveCommand } from './serve.js';

const USAGE = `Usage: fullduplex <command> [options]

Commands:
  serve     Run a WebSocket server with an echo endpoint at /echo
  connect   Open an interactive WebSocket client session to a URL

Run "fullduplex <command> --help" for a command's options.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'connect':
      return connectCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`fullduplex: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`fullduplex: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
