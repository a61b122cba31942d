"""Client on Python `websockets` driving a server under test.

Usage: client.py URL. Sends text and binary messages of several sizes, checks
each echo (content and type), pings, then closes with 1000. Prints one line
per check and exits 0 only if everything matched.
"""
import asyncio
import sys

import websockets


async def main(url):
    failures = 0
    async with websockets.connect(url, subprotocols=["chat"], max_size=64 * 1024 * 1024, compression=None) as ws:
        print(f"subprotocol {ws.subprotocol}", flush=True)
        cases = []
        for size in (0, 1, 125, 126, 65535, 65536, 1 << 20):
            cases.append(bytes((i * 7) & 0xFF for i in range(size)))
            cases.append(("héllo wörld 🌍 " * (size // 18 + 1))[: max(size // 4, 1)])
        for message in cases:
            await ws.send(message)
            echo = await ws.recv()
            ok = echo == message and type(echo) is type(message)
            failures += 0 if ok else 1
            print(f"{'ok' if ok else 'MISMATCH'} {type(message).__name__} {len(message)}", flush=True)
        # Fragmented message: an iterable sends one fragment per item.
        await ws.send(["frag", "mented ", "téxt"])
        echo = await ws.recv()
        failures += 0 if echo == "fragmented téxt" else 1
        print(f"{'ok' if echo == 'fragmented téxt' else 'MISMATCH'} fragmented", flush=True)
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        print("ok ping", flush=True)
        await ws.close(1000, "done")
        print(f"closed {ws.close_code} {ws.close_reason}", flush=True)
        if ws.close_code != 1000:
            failures += 1
    return failures


sys.exit(1 if asyncio.run(main(sys.argv[1])) else 0)
