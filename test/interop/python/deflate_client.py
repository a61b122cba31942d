"""Client on Python `websockets` with permessage-deflate (RFC 7692) driving a server under test.

Usage: deflate_client.py URL [tight]. Offers websockets' default
permessage-deflate ("tight": no context takeover either way,
server_max_window_bits=10, client_max_window_bits=9), prints
"extensions <response header>", sends compressible and incompressible text and
binary messages one by one, then a pipelined run of similar ones, checks each
echo (content and type), closes with 1000. Prints one line per check and exits
0 only if everything matched.
"""
import asyncio
import json
import os
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


def records(size):
    """`size` characters of JSON lines that repeat with small variations."""
    out = []
    length = 0
    i = 0
    while length < size:
        line = json.dumps({"id": i % 50, "user": "alice", "tags": ["ws", "deflate"], "ok": True}) + "\n"
        out.append(line)
        length += len(line)
        i += 1
    return "".join(out)[:size]


async def main(url, tight):
    extensions = None
    if tight:
        extensions = [
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=10,
                client_max_window_bits=9,
            )
        ]
    failures = 0

    def check(name, message, echo):
        nonlocal failures
        ok = echo == message and type(echo) is type(message)
        failures += 0 if ok else 1
        print(f"{'ok' if ok else 'MISMATCH'} {name} {type(message).__name__} {len(message)}", flush=True)

    async with websockets.connect(url, extensions=extensions, max_size=64 * 1024 * 1024, max_queue=None) as ws:
        print(f"extensions {ws.response_headers.get('Sec-WebSocket-Extensions', '')}", flush=True)
        for size in (0, 1, 100, 1023, 1024, 5000, 65536, 300000):
            block = os.urandom(2000)
            cases = {
                "json": records(size),
                "unicode": ("é€😀 " * size)[: size // 3],
                "json-bytes": records(size).encode(),
                "random": os.urandom(size),
                "blocks": (block * (size // 2000 + 1))[:size],
            }
            for name, message in cases.items():
                await ws.send(message)
                check(name, message, await ws.recv())
        # Fragmented: an iterable sends one fragment per item, compressed as one message.
        await ws.send([records(3000), "téxt 😀", records(10)])
        check("fragmented", records(3000) + "téxt 😀" + records(10), await ws.recv())
        run = [records(1000 + 7 * i) for i in range(100)]
        for message in run:
            await ws.send(message)
        for message in run:
            check("run", message, await ws.recv())
        await ws.close(1000, "done")
        print(f"closed {ws.close_code} {ws.close_reason}", flush=True)
        if ws.close_code != 1000:
            failures += 1
    return failures


sys.exit(1 if asyncio.run(main(sys.argv[1], sys.argv[2:] == ["tight"])) else 0)
