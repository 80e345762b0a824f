#!/usr/bin/python3
"""driver.py with slixmpp's PEP plugins: XEP-0060 (pubsub), XEP-0163 (PEP,
+notify interests advertised through XEP-0115 caps) and XEP-0084 (user
avatar).

Same JSON config and events as driver.py, plus these actions:
  {"op": "publish_avatar", "data_b64", "type", "width", "height"}
        publish the image to urn:xmpp:avatar:data, then its metadata, with
        the xep_0084 plugin; emits "avatar_published" with "id"
  {"op": "wait_avatar_event", "from"}
        wait for an avatar metadata notification (xep_0163 event
        avatar_metadata_publish); emits "avatar_event" with "from", "id",
        "bytes", "type"
  {"op": "retrieve_avatar", "jid", "id"}
        fetch the data item with the xep_0084 plugin; emits "avatar" with
        "id" (SHA-1 of the data) and "bytes"
  {"op": "get_vcard", "jid"}
        fetch the vcard-temp of jid; emits "vcard" with "id" (SHA-1 of the
        PHOTO BINVAL, "" without one) and "type"
  {"op": "wait_presence_photo", "from", "id"}
        wait for available presence from "from" whose XEP-0153 photo hash
        is "id"; emits "presence_photo"
"""

import base64
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402,F401  (exits 3 when slixmpp is missing)
from driver import Driver, Failure, Timeout, emit  # noqa: E402
from runner import run  # noqa: E402
from slixmpp import JID  # noqa: E402

NS_META = "urn:xmpp:avatar:metadata"
NS_DATA = "urn:xmpp:avatar:data"
NS_UPDATE = "vcard-temp:x:update"
NS_VCARD = "vcard-temp"


class PEPDriver(Driver):
    def __init__(self, cfg):
        super().__init__(cfg)
        x = self.xmpp
        for p in ("xep_0030", "xep_0115", "xep_0060", "xep_0163", "xep_0084"):
            x.register_plugin(p)
        self.avatar_events = []
        x.add_event_handler("avatar_metadata_publish", self._on_metadata)

    def _on_metadata(self, msg):
        info = msg.xml.find(".//{%s}info" % NS_META)
        self.avatar_events.append({
            "from": str(msg["from"]),
            "id": info.get("id", "") if info is not None else "",
            "bytes": info.get("bytes", "") if info is not None else "",
            "type": info.get("type", "") if info is not None else "",
        })
        self.changed.set()

    async def do(self, a):
        op = a["op"]
        x = self.xmpp
        timeout = float(a.get("timeout", self.default_timeout))
        if op == "publish_avatar":
            data = base64.b64decode(a["data_b64"])
            plugin = x["xep_0084"]
            await plugin.publish_avatar(data, timeout=timeout)
            aid = plugin.generate_id(data)
            await plugin.publish_avatar_metadata(
                {"id": aid, "type": a["type"], "bytes": str(len(data)),
                 "width": str(a.get("width", "")), "height": str(a.get("height", ""))},
                timeout=timeout)
            emit("avatar_published", id=aid)
        elif op == "wait_avatar_event":
            def check():
                for i, ev in enumerate(self.avatar_events):
                    if JID(ev["from"]).bare == a["from"]:
                        return self.avatar_events.pop(i)
                return None
            try:
                ev = await self.wait_for("avatar metadata event from %s" % a["from"], timeout, check)
            except Timeout as e:
                raise Timeout("%s; backlog: %s" % (e, self.backlog_text()))
            emit("avatar_event", **ev)
        elif op == "retrieve_avatar":
            res = await x["xep_0084"].retrieve_avatar(JID(a["jid"]), a["id"], timeout=timeout)
            value = res["pubsub"]["items"]["item"]["avatar_data"]["value"]
            if not value:
                raise Failure("no avatar data in %s" % res)
            emit("avatar", id=hashlib.sha1(value).hexdigest(), bytes=len(value))
        elif op == "get_vcard":
            iq = x.Iq()
            iq["type"] = "get"
            iq["to"] = a["jid"]
            iq.xml.append(iq.xml.makeelement("{%s}vCard" % NS_VCARD, {}))
            res = await iq.send(timeout=timeout)
            binval = res.xml.find("{%s}vCard/{%s}PHOTO/{%s}BINVAL" % (NS_VCARD, NS_VCARD, NS_VCARD))
            typ = res.xml.find("{%s}vCard/{%s}PHOTO/{%s}TYPE" % (NS_VCARD, NS_VCARD, NS_VCARD))
            aid = ""
            if binval is not None and binval.text:
                aid = hashlib.sha1(base64.b64decode("".join(binval.text.split()))).hexdigest()
            emit("vcard", id=aid, type=typ.text if typ is not None else "", raw=str(res))
        elif op == "wait_presence_photo":
            def photo(p):
                el = p.xml.find("{%s}x/{%s}photo" % (NS_UPDATE, NS_UPDATE))
                return el.text if el is not None else None

            def check():
                return self.take("presence", lambda p: p["type"] == "available"
                                 and self.from_matches(p, a["from"]) and photo(p) == a["id"])
            try:
                p = await self.wait_for("presence with photo %s from %s" % (a["id"], a["from"]), timeout, check)
            except Timeout as e:
                raise Timeout("%s; backlog: %s" % (e, self.backlog_text()))
            emit("presence_photo", raw=str(p), **{"from": str(p["from"])})
        else:
            await super().do(a)


if __name__ == "__main__":
    run(PEPDriver)
