#!/usr/bin/python3
"""driver.py with XEP-0198 stream management (slixmpp's xep_0198 plugin).

Same JSON config and events as driver.py, plus these actions:
  {"op": "wait_sm"}       wait until the server enabled stream management
                          with resumption; emits "sm_enabled" with "id"
  {"op": "wait_resumed"}  wait until the connection was lost (cut by the
                          test), reconnect, and wait for a successful
                          <resume/>; emits "cut", then "resumed" with "h"
Received messages are emitted as "received" events as they arrive, so the
test can count duplicates.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402  (exits 3 when slixmpp is missing)
from driver import Driver, Failure, Timeout, emit  # noqa: E402
from runner import run  # noqa: E402


class SMDriver(Driver):
    def __init__(self, cfg):
        super().__init__(cfg)
        x = self.xmpp
        x.register_plugin("xep_0198")
        sm = x["xep_0198"]
        sm.allow_resume = True
        self.sm_enabled = asyncio.Event()
        self.lost = asyncio.Event()
        self.resumed = asyncio.Event()
        self.resume_failed = None
        x.add_event_handler("sm_enabled", lambda st: (emit("sm_enabled", id=st["id"], resume=bool(st["resume"])),
                                                      self.sm_enabled.set()))
        x.add_event_handler("session_resumed", lambda st: self.resumed.set())
        x.add_event_handler("session_end", lambda _=None: emit("session_end"))
        x.add_event_handler("disconnected", lambda _=None: self.lost.set())
        x.add_event_handler("message", lambda m: emit("received", **self.message_fields(m)))

        def failed(st):
            self.resume_failed = str(st)
            self.resumed.set()
        x.add_event_handler("sm_failed", failed)

    async def do(self, a):
        op = a["op"]
        x = self.xmpp
        timeout = float(a.get("timeout", self.default_timeout))
        if op == "wait_sm":
            try:
                await asyncio.wait_for(self.sm_enabled.wait(), timeout)
            except asyncio.TimeoutError:
                raise Timeout("stream management enabled")
            sm = x["xep_0198"]
            if not sm.sm_id:
                raise Failure("stream management enabled without resumption (no id)")
        elif op == "wait_resumed":
            try:
                await asyncio.wait_for(self.lost.wait(), timeout)
            except asyncio.TimeoutError:
                raise Timeout("the test to cut the connection")
            emit("cut", sm_id=x["xep_0198"].sm_id or "")
            self.resumed.clear()
            x.connect((self.cfg["host"], int(self.cfg["port"])), force_starttls=True)
            try:
                await asyncio.wait_for(self.resumed.wait(), timeout)
            except asyncio.TimeoutError:
                raise Timeout("stream resumption after reconnecting")
            if self.resume_failed is not None:
                raise Failure("resumption failed: " + self.resume_failed)
            emit("resumed", h=x["xep_0198"].handled)
        else:
            await super().do(a)


if __name__ == "__main__":
    run(SMDriver)
