// fullduplex's channel layer (dist/channels): a ChannelServer with its
// defaults (in-process LocalBroker and MemoryStore, no history, no presence);
// `pub` publishes from application code with ChannelServer.publish.
import { createInterface } from 'node:readline';
import { ChannelServer } from '../../dist/channels/index.js';
import { fail, host, port, ready } from '../servers/common.mjs';
import { ROOM, message, parsePub } from './payload.mjs';

let seq = 0;
try {
  const channels = new ChannelServer({ onError: (err, context) => process.stderr.write(`FAIL ${context}: ${err}\n`) });
  const address = await channels.listen(port, host);
  createInterface({ input: process.stdin }).on('line', (line) => {
    const cmd = parsePub(line);
    if (cmd === null) return;
    for (let i = 0; i < cmd.count; i++) {
      channels.publish(ROOM, message(++seq, cmd.size)).catch((err) => process.stderr.write(`FAIL publish: ${err}\n`));
    }
  });
  ready(address.port, () => channels.close());
} catch (err) {
  fail(err);
}
