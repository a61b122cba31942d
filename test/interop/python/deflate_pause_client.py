"""Client on Python `websockets` with permessage-deflate (its default offer,
context takeover both ways) that pauses: it sends compressible text messages
and checks their echoes, prints "paused", sleeps PAUSE seconds (long enough
for the server under test to release its zlib streams), then sends the same
messages again (its compressor now refers back to messages from before the
pause), checks the echoes, and closes with 1000.

Usage: deflate_pause_client.py URL PAUSE. Prints one line per check; exits 0
only if everything matched.
"""
import asyncio
import json
import sys

import websockets


def records(size, seed):
    out = []
    length = 0
    i = 0
    while length < size:
        line = json.dumps({"id": (seed * 31 + i) % 97, "room": "lobby", "text": f"message {seed}/{i}"}) + "\n"
        out.append(line)
        length += len(line)
        i += 1
    return "".join(out)[:size]


async def main(url, pause):
    failures = 0
    messages = [records(200 + 900 * k, k) for k in range(6)]
    async with websockets.connect(url, max_size=16 * 1024 * 1024) as ws:
        print(f"extensions {ws.response_headers.get('Sec-WebSocket-Extensions', '')}", flush=True)
        for round_ in ("before", "after"):
            for message in messages:
                await ws.send(message)
                echo = await ws.recv()
                ok = echo == message
                failures += 0 if ok else 1
                print(f"{'ok' if ok else 'MISMATCH'} {round_} {len(message)}", flush=True)
            if round_ == "before":
                print("paused", flush=True)
                await asyncio.sleep(pause)
        await ws.close(1000, "done")
        print(f"closed {ws.close_code}", flush=True)
        if ws.close_code != 1000:
            failures += 1
    return failures


sys.exit(1 if asyncio.run(main(sys.argv[1], float(sys.argv[2]))) else 0)
