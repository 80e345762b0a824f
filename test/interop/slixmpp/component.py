#!/usr/bin/python3
"""An XEP-0114 external component built on slixmpp's ComponentXMPP.

Usage: /usr/bin/python3 component.py '<json>'

The JSON object has host, port (the server's listen.component), jid (the
component's domain), secret, and deadline (seconds). The component answers
every chat message sent to a JID at its domain with "echo: <body>" from
that JID, answers disco#info on its domain (slixmpp's xep_0030: a gateway
identity), and sends one message of its own to "greet" (a JID) once
connected. It prints JSON lines: connected, message (each one received),
done (after "expect" messages), error, timeout.
"""

import asyncio

from slixmpp.componentxmpp import ComponentXMPP

from driver import emit, Timeout
import runner


class Component:
    def __init__(self, cfg):
        self.cfg = cfg
        x = ComponentXMPP(cfg["jid"], cfg["secret"], cfg["host"], int(cfg["port"]))
        self.xmpp = x
        x.register_plugin("xep_0030")
        x["xep_0030"].add_identity(category="gateway", itype="irc", name="Parley interop gateway", jid=cfg["jid"])
        self.connected = asyncio.get_running_loop().create_future()
        self.received = 0
        self.enough = asyncio.Event()
        x.add_event_handler("session_start", self._on_start)
        x.add_event_handler("message", self._on_message)
        x.add_event_handler("disconnected", lambda _=None: self._fail("disconnected"))
        x.add_event_handler("stream_error", lambda e=None: self._fail("stream error: %s" % e))

    def _fail(self, why):
        if not self.connected.done():
            self.connected.set_exception(RuntimeError(why))

    def _on_start(self, _event):
        if not self.connected.done():
            self.connected.set_result(True)

    def _on_message(self, msg):
        emit("message", **{"from": str(msg["from"]), "to": str(msg["to"]), "body": msg["body"], "type": msg["type"]})
        if msg["type"] in ("chat", "normal"):
            self.xmpp.send_message(mto=msg["from"], mfrom=msg["to"], mbody="echo: " + msg["body"], mtype="chat")
        self.received += 1
        if self.received >= int(self.cfg.get("expect", 1)):
            self.enough.set()

    async def run(self):
        self.xmpp.connect()
        try:
            await asyncio.wait_for(self.connected, 15)
        except asyncio.TimeoutError:
            raise Timeout("the component handshake within 15s")
        emit("connected", jid=self.cfg["jid"])
        if self.cfg.get("greet"):
            self.xmpp.send_message(mto=self.cfg["greet"], mfrom="bot@" + self.cfg["jid"], mbody="hello from slixmpp", mtype="chat")
        try:
            await asyncio.wait_for(self.enough.wait(), float(self.cfg.get("timeout", 20)))
        except asyncio.TimeoutError:
            raise Timeout("%s messages" % self.cfg.get("expect", 1))
        await asyncio.sleep(0.2)  # let the last echo go out
        emit("done")

    async def close(self):
        x = self.xmpp
        if x.transport is not None:
            try:
                await asyncio.wait_for(x.disconnect(wait=2.0), 5)
            except Exception:
                pass


if __name__ == "__main__":
    runner.run(Component)
