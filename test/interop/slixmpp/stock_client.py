#!/usr/bin/python3
"""A Conversations-like day in one slixmpp client: driver.py with stream
management (sm_resume.py), carbons and MAM (mam_carbons.py), avatars
(pep_avatar.py) and HTTP upload (http_upload.py), plus XEP-0352 client
state indication (slixmpp's xep_0352 plugin).

Same JSON config and events as those scripts, plus these actions:
  {"op": "csi", "state"}   send <active/> or <inactive/>; emits "csi" with
                           "op" = state
  {"op": "wait_bodies", "n"}
                           wait until n messages with a body arrived in all
                           (offline, live; not MAM results or carbons);
                           emits "bodies" with "length"
  {"op": "markers", "to", "n"}
                           send n XEP-0333 displayed markers to each JID of
                           the list "to", one after the other as a client
                           does when its user opens the chats; emits "sent"
                           with "length" = how many
"""

import os
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driver import emit  # noqa: E402  (exits 3 when slixmpp is missing)
from http_upload import UploadDriver  # noqa: E402
from mam_carbons import MAMCarbonsDriver  # noqa: E402
from pep_avatar import PEPDriver  # noqa: E402
from runner import run  # noqa: E402
from sm_resume import SMDriver  # noqa: E402

NS_MARKERS = "urn:xmpp:chat-markers:0"


class StockDriver(SMDriver, MAMCarbonsDriver, PEPDriver, UploadDriver):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.xmpp.register_plugin("xep_0352")
        self.bodies = 0
        self.xmpp.add_event_handler("message", self._count)

    def _count(self, m):
        if m["body"] and m["type"] != "error":
            self.bodies += 1
            self.changed.set()

    async def do(self, a):
        op = a["op"]
        x = self.xmpp
        timeout = float(a.get("timeout", self.default_timeout))
        if op == "csi":
            csi = x["xep_0352"]
            if a["state"] == "inactive":
                csi.send_inactive()
            else:
                csi.send_active()
            emit("csi", op=a["state"])
        elif op == "wait_bodies":
            n = int(a["n"])
            await self.wait_for("%d messages with a body (got %d)" % (n, self.bodies), timeout,
                                lambda: self.bodies >= n)
            emit("bodies", length=self.bodies)
        elif op == "markers":
            sent = 0
            for i in range(int(a["n"])):
                for to in a["to"]:
                    m = x.make_message(mto=to, mtype="chat")
                    m.xml.append(ET.Element("{%s}displayed" % NS_MARKERS, id="m%d" % i))
                    m.send()
                    sent += 1
            emit("sent", op=op, length=sent)
        else:
            await super().do(a)


if __name__ == "__main__":
    run(StockDriver)
