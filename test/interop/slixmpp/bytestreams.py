#!/usr/bin/python3
"""Two slixmpp clients transfer bytes through the server's XEP-0065 SOCKS5
proxy with slixmpp's xep_0065 plugin.

Usage: /usr/bin/python3 bytestreams.py '<json>'

The JSON object has host, port (c2s), initiator and target (full JIDs)
with passwords, size (bytes to send) and deadline. The initiator discovers
the proxy (disco#items, disco#info, the network address query), offers it
to the target, which connects and answers streamhost-used; the initiator
connects, activates the stream and sends size bytes. Output: JSON lines
"proxies" (what the initiator found), "received" (the target's byte count
and SHA-256), done, error, timeout.
"""

import asyncio
import hashlib
import ssl

from slixmpp import ClientXMPP

from driver import emit, Timeout
import runner


def client(jid, password):
    x = ClientXMPP(jid, password)
    x.ssl_context.check_hostname = False
    x.ssl_context.verify_mode = ssl.CERT_NONE
    x.register_plugin("xep_0030")
    x.register_plugin("xep_0065", {"auto_accept": True})
    return x


class Transfer:
    def __init__(self, cfg):
        self.cfg = cfg
        self.a = client(cfg["initiator"], cfg["initiator_password"])
        self.b = client(cfg["target"], cfg["target_password"])
        loop = asyncio.get_running_loop()
        self.started = {"a": loop.create_future(), "b": loop.create_future()}
        self.a.add_event_handler("session_start", lambda _: self.started["a"].done() or self.started["a"].set_result(True))
        self.b.add_event_handler("session_start", lambda _: self.started["b"].done() or self.started["b"].set_result(True))
        self.got = bytearray()
        self.complete = asyncio.Event()
        self.b.add_event_handler("socks5_data", self._on_data)

    def _on_data(self, data):
        self.got += data
        if len(self.got) >= int(self.cfg["size"]):
            self.complete.set()

    async def run(self):
        for x in (self.a, self.b):
            x.connect((self.cfg["host"], int(self.cfg["port"])), force_starttls=True)
        try:
            await asyncio.wait_for(asyncio.gather(*self.started.values()), 15)
        except asyncio.TimeoutError:
            raise Timeout("both sessions to start")
        proxies = await self.a["xep_0065"].discover_proxies(timeout=10)
        emit("proxies", proxies={str(k): [v[0], int(v[1])] for k, v in proxies.items()})
        size = int(self.cfg["size"])
        data = bytes((i * 7 + 3) % 256 for i in range(size))
        sock = await self.a["xep_0065"].handshake(self.cfg["target"], timeout=10)
        if sock is None:
            raise RuntimeError("the SOCKS5 handshake through the proxy failed")
        await sock.write(data)
        try:
            await asyncio.wait_for(self.complete.wait(), 20)
        except asyncio.TimeoutError:
            raise Timeout("%d bytes at the target (got %d)" % (size, len(self.got)))
        emit("received", bytes=len(self.got), sha256=hashlib.sha256(self.got).hexdigest(),
             sent_sha256=hashlib.sha256(data).hexdigest())
        emit("done")

    async def close(self):
        for x in (self.a, self.b):
            if x.transport is not None:
                try:
                    await asyncio.wait_for(x.disconnect(wait=1.0), 5)
                except Exception:
                    pass


if __name__ == "__main__":
    runner.run(Transfer)
