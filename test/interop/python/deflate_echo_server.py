"""Echo server on Python `websockets` with permessage-deflate (RFC 7692).

Usage: deflate_echo_server.py [tight]. Accepts permessage-deflate with
websockets' defaults (server_max_window_bits=12, client_max_window_bits=12),
or with "tight": no context takeover either way, server_max_window_bits=10,
client_max_window_bits=9. Prints "PORT <n>" once listening on 127.0.0.1,
echoes every message with its type (websockets compresses every message it
sends), and exits when stdin closes.
"""
import asyncio
import sys

import websockets
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


async def echo(websocket, *_):
    try:
        async for message in websocket:
            await websocket.send(message)
    except websockets.ConnectionClosed:
        pass


async def main(tight):
    extensions = None
    if tight:
        extensions = [
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=10,
                client_max_window_bits=9,
            )
        ]
    async with websockets.serve(
        echo, "127.0.0.1", 0, extensions=extensions, max_size=64 * 1024 * 1024, max_queue=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        loop = asyncio.get_running_loop()
        # Run until the test closes our stdin.
        await loop.run_in_executor(None, sys.stdin.read)


asyncio.run(main(sys.argv[1:] == ["tight"]))
