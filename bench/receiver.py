"""The benchmark's receiver: a separate process answering webhooks as cheaply as it can.

    python -m bench.receiver PORT

`omnihooks receive` (aiohttp's server) was itself the limit of a ceiling measured against it
(bench/README.md), so that ceiling was the receiver's, not the client's. This one speaks just
enough HTTP/1.1 for keep-alive POSTs: it answers 200 (500 under /fail) and keeps
(webhook-id, arrival time) of each 200 for `GET /arrivals`, and the count of failed POSTs for
`GET /failed`; `DELETE /arrivals` forgets both.
Not a web server: no chunked bodies, no TLS, requests from the benchmark only.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
FAILED = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
HEADERS_END = b"\r\n\r\n"

arrivals: list[tuple[str, float]] = []
failed = [0]


class Receiver(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = []
        while True:
            end = self.buffer.find(HEADERS_END)
            if end < 0:
                break
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            length, webhook_id = 0, ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "webhook-id":
                    webhook_id = value.strip()
            if len(self.buffer) < end + 4 + length:
                break  # the body is still coming
            self.buffer = self.buffer[end + 4 + length :]
            answers.append(self.answer(lines[0], webhook_id))
        if answers and self.transport is not None:
            self.transport.write(b"".join(answers))

    def answer(self, request_line: str, webhook_id: str) -> bytes:
        method, path, _ = request_line.split(" ", 2)
        if method == "POST":
            if path.startswith("/otlp"):  # an OTLP/HTTP collector: spans, not webhooks
                return OK
            if path.startswith("/fail"):
                failed[0] += 1
                return FAILED
            arrivals.append((webhook_id, time.time()))
            return OK
        if method == "DELETE":
            arrivals.clear()
            failed[0] = 0
            return NO_CONTENT
        body = orjson.dumps(failed[0] if path == "/failed" else arrivals)
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Receiver, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(int(sys.argv[1])))
