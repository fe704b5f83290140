"""A server that answers MLflow's logging calls at once: what MLflow's REST client costs alone.

python _instant_server.py --upstream 127.0.0.1:5000 --port 5001

``runs/log-metric``, ``log-batch``, ``log-parameter`` and ``set-tag`` are answered ``{}`` as soon
as their body has arrived; every other request (creating the experiment and the run,
``/health``) is relayed to the upstream server. One asyncio loop with the least HTTP/1.1 it
takes (keep-alive, ``Content-Length`` bodies), so a client loop against it measures the client:
no server answering over ``http://`` can make that loop faster.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client

INSTANT = (b"/runs/log-metric", b"/runs/log-batch", b"/runs/log-parameter", b"/runs/set-tag")
EMPTY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def relay(upstream: str, method: str, target: str, body: bytes) -> bytes:
    conn = http.client.HTTPConnection(upstream, timeout=120)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request(method, target, body=body or None, headers=headers)
        response = conn.getresponse()
        out = response.read()
    finally:
        conn.close()
    head = f"HTTP/1.1 {response.status} {response.reason}\r\nContent-Type: application/json\r\n"
    return head.encode() + f"Content-Length: {len(out)}\r\n\r\n".encode() + out


async def serve(upstream: str, port: int) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.split(b"\r\n")
                method, target, _ = request_line.split(b" ", 2)
                size = 0
                for line in lines:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        size = int(value)
                body = await reader.readexactly(size) if size else b""
                path = target.split(b"?", 1)[0]
                if path.endswith(INSTANT):
                    writer.write(EMPTY)
                else:
                    answer = await asyncio.to_thread(
                        relay, upstream, method.decode(), target.decode(), body
                    )
                    writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True, help="host:port of the real server")
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    asyncio.run(serve(a.upstream, a.port))


if __name__ == "__main__":
    main()
