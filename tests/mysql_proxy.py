"""A TCP proxy in front of MariaDB that cuts one connection at a chosen point of the MySQL protocol.

Armed with statement fragments, it drops the connection instead of forwarding the statement that contains them (the
server never runs it). Armed with `COMMIT`, it forwards the COMMIT, waits for the server's answer, drops that answer
and closes the connection: the transaction is committed but the client only sees a lost connection, the case a
client-side hook cannot produce.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

COM_QUERY = 0x03
OK_PACKET = 0x00


@dataclass
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    drop_reply: bool = False

    def close(self) -> None:
        self.client.transport.abort()
        self.server.transport.abort()


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to the MariaDB server; `arm(...)` cuts the next matching exchange, once."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.pattern: tuple[str, ...] | None = None
        self.cut_before_statement = 0  # connections dropped before a statement reached the server
        self.cut_after_commit = 0  # connections dropped after the server acknowledged a COMMIT (answer lost)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._pumps: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for link in self._links:
            link.close()  # ends both pumps of every connection still open
        await asyncio.gather(*self._pumps, return_exceptions=True)

    def arm(self, *parts: str) -> None:
        self.pattern = parts

    @property
    def cuts(self) -> int:
        return self.cut_before_statement + self.cut_after_commit

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        link = _Link(client_writer, server_writer)
        self._links.append(link)
        pumps = [
            asyncio.create_task(self._from_client(client_reader, link)),
            asyncio.create_task(self._from_server(server_reader, link)),
        ]
        self._pumps.extend(pumps)
        with contextlib.suppress(Exception):  # a pump ends with an error when its connection is cut
            await asyncio.gather(*pumps)
        link.close()

    async def _from_client(self, reader: asyncio.StreamReader, link: _Link) -> None:
        while True:
            header = await reader.readexactly(4)
            payload = await reader.readexactly(int.from_bytes(header[:3], "little"))
            if self.pattern and payload[:1] == bytes([COM_QUERY]):
                sql = payload[1:].decode("utf-8", "replace")
                if self.pattern == ("COMMIT",) and sql.strip().upper() == "COMMIT":
                    self.pattern = None
                    link.drop_reply = True  # set before the server can answer
                elif self.pattern != ("COMMIT",) and all(part in sql for part in self.pattern):
                    self.pattern = None
                    self.cut_before_statement += 1
                    link.close()
                    return
            link.server.write(header + payload)
            await link.server.drain()

    async def _from_server(self, reader: asyncio.StreamReader, link: _Link) -> None:
        while data := await reader.read(65536):
            if link.drop_reply:  # set before the COMMIT went out, and every earlier answer was already read
                while len(data) < 5:
                    data += await reader.readexactly(5 - len(data))
                assert data[4] == OK_PACKET, f"the server refused the COMMIT: {data!r}"
                self.cut_after_commit += 1
                break
            link.client.write(data)
            await link.client.drain()
        link.close()
