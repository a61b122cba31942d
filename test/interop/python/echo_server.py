"""Echo server on Python `websockets` (an independent RFC 6455 implementation).

Usage: echo_server.py [deflate | tight]. Prints "PORT <n>" once listening on
127.0.0.1, echoes every message with its type, offers the subprotocol
"chat", and exits when stdin closes. Without an argument it declines
permessage-deflate (RFC 7692). With "deflate" it accepts it with websockets'
defaults (server_max_window_bits=12, client_max_window_bits=12) and
compresses every message it sends; with "tight", with no context takeover
either way, server_max_window_bits=10 and client_max_window_bits=9.
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


def compression_options(mode):
    if mode == "deflate":
        return {}
    if mode == "tight":
        factory = ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=10,
            client_max_window_bits=9,
        )
        return {"extensions": [factory]}
    return {"compression": None}


async def main(mode):
    async with websockets.serve(
        echo,
        "127.0.0.1",
        0,
        subprotocols=["chat"],
        max_size=64 * 1024 * 1024,
        max_queue=None,
        **compression_options(mode),
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        loop = asyncio.get_running_loop()
        # Run until the test closes our stdin.
        await loop.run_in_executor(None, sys.stdin.read)


asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "plain"))
