"""Echo server on Python `websockets` (an independent RFC 6455 implementation).

Prints "PORT <n>" once listening on 127.0.0.1, echoes every message with its
type, offers the subprotocol "chat", and exits when stdin closes.
"""
import asyncio
import sys

import websockets


async def echo(websocket, *_):
    try:
        async for message in websocket:
            await websocket.send(message)
    except websockets.ConnectionClosed:
        pass


async def main():
    async with websockets.serve(
        echo, "127.0.0.1", 0, subprotocols=["chat"], max_size=64 * 1024 * 1024, compression=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        loop = asyncio.get_running_loop()
        # Run until the test closes our stdin.
        await loop.run_in_executor(None, sys.stdin.read)


asyncio.run(main())
