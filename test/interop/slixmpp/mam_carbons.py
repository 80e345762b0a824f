#!/usr/bin/python3
"""driver.py with slixmpp's XEP-0280 (carbons) and XEP-0313 (MAM, paged
with XEP-0059 RSM) plugins, reporting XEP-0359 stanza-ids.

Same JSON config and events as driver.py. Every incoming message is also
reported as it arrives, so the test can count copies:
  live     a plain message with a body: "from", "to", "body", "delayed"
           (true when it carries an XEP-0203 delay), "stanza_id" (the
           XEP-0359 id by the account's bare JID, "" without one)
  carbon   a carbon copy (slixmpp's carbon_received / carbon_sent events):
           "dir" (received|sent), "from", "to", "body" and "stanza_id" of
           the forwarded message

Extra actions:
  {"op": "carbons_enable"} / {"op": "carbons_disable"}
        with the xep_0280 plugin; emits "carbons" with "op" enable|disable
  {"op": "send", "to", "body", "private": true}
        driver.py's send, with <private xmlns='urn:xmpp:carbons:2'/>
        (the plugin's PrivateCarbon stanza) when "private" is set
  {"op": "mark", "name"}
        emits "mark" with "op" = name (a synchronisation point for the test)
  {"op": "wait_carbon", "dir", "body"}
        wait until a carbon of that direction and body arrived
  {"op": "mam", "name", "with", "start", "end", "max", "jid", "mode"}
        query the archive (of "jid", default the account's own) with the
        xep_0313 plugin and RSM <max/> = "max". "mode" is "pages" (the
        default: the plugin's page iterator, retrieve(iterator=True)),
        "iterate" (its message iterator, iterate(), which hides the pages)
        or "single" (one retrieve() without paging: the iterators end
        silently on an error answer, since slixmpp's RSM ResultIterator
        turns any XMPPError into StopAsyncIteration). Emits "mam"
        with "op" = name, "results" (each "id", "from", "to", "body",
        "stamp", "stanza_id") and "pages" (each "n", "first", "last",
        "count", "index", "complete"); or "mam_error" with "op" = name and
        "condition" when the server answers with an error.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402  (exits 3 when slixmpp is missing)
from driver import Driver, Failure, Timeout, emit  # noqa: E402

from slixmpp import JID  # noqa: E402
from slixmpp.exceptions import IqError  # noqa: E402
from slixmpp.plugins import xep_0082  # noqa: E402

NS_SID = "urn:xmpp:sid:0"


class MAMCarbonsDriver(Driver):
    def __init__(self, cfg):
        super().__init__(cfg)
        x = self.xmpp
        for p in ("xep_0030", "xep_0059", "xep_0280", "xep_0297", "xep_0313"):
            x.register_plugin(p)
        self.carbons = []  # (dir, forwarded message)
        x.add_event_handler("carbon_received", lambda m: self._on_carbon("received", m))
        x.add_event_handler("carbon_sent", lambda m: self._on_carbon("sent", m))
        x.add_event_handler("message", self._on_message)

    def stanza_id(self, m):
        """The XEP-0359 id the account's own server gave m ("" if none).

        Read from the elements: the xep_0359 plugin's m['stanza_id'] is
        only the first <stanza-id/>, whoever its 'by' is."""
        own = self.xmpp.boundjid.bare
        for el in m.xml.findall("{%s}stanza-id" % NS_SID):
            if JID(el.get("by", "")).bare == own:
                return el.get("id", "")
        return ""

    def _on_carbon(self, direction, m):
        fwd = m["carbon_%s" % direction]  # is_extension: the forwarded message
        self.carbons.append((direction, fwd))
        emit("carbon", dir=direction, body=fwd["body"], stanza_id=self.stanza_id(fwd),
             raw=str(m), **{"from": str(fwd["from"]), "to": str(fwd["to"])})
        self.changed.set()

    def _on_message(self, m):
        if m["body"] == "" or m["type"] == "error":
            return  # carbons, MAM results: no body of their own
        emit("live", body=m["body"], stanza_id=self.stanza_id(m),
             delayed=m.xml.find("{urn:xmpp:delay}delay") is not None,
             raw=str(m), **{"from": str(m["from"]), "to": str(m["to"])})

    def result_fields(self, msg):
        """One MAM result message, as the plugin collected it."""
        fwd = msg["mam_result"]["forwarded"]
        inner = fwd["stanza"]
        return {"id": msg["mam_result"]["id"], "from": str(inner["from"]), "to": str(inner["to"]),
                "body": inner["body"], "stamp": fwd["delay"].xml.get("stamp", ""),
                # slixmpp's XEP-0082 parser must read it (it takes at most
                # six fraction digits)
                "parsed_stamp": fwd["delay"]["stamp"].isoformat(),
                "stanza_id": self.stanza_id(inner)}

    @staticmethod
    def page_fields(page, n):
        rsm = page["mam_fin"]["rsm"]
        return {"n": n, "first": rsm["first"], "last": rsm["last"], "count": rsm["count"],
                "index": rsm["first_index"], "complete": page["mam_fin"].xml.get("complete", "")}

    async def mam(self, a, timeout):
        mam = self.xmpp["xep_0313"]
        kwargs = {
            "jid": JID(a["jid"]) if a.get("jid") else None,
            "with_jid": JID(a["with"]) if a.get("with") else None,
            "start": xep_0082.parse(a["start"]) if a.get("start") else None,
            "end": xep_0082.parse(a["end"]) if a.get("end") else None,
            "rsm": {"max": int(a.get("max", 10))},
        }
        results, pages = [], []
        mode = a.get("mode", "pages")
        if mode == "single":
            page = await mam.retrieve(timeout=timeout, **kwargs)
            results = [self.result_fields(m) for m in page["mam"]["results"]]
            pages.append(self.page_fields(page, len(results)))
        elif mode == "iterate":
            async for msg in mam.iterate(**kwargs):
                results.append(self.result_fields(msg))
        elif mode == "pages":
            # The page iterator: one Iq result per RSM page, the page's
            # messages collected into ['mam_fin']['results'].
            it = mam.retrieve(iterator=True, **kwargs)
            it.iq_options = {"timeout": timeout}
            async for page in it:
                got = page["mam_fin"]["results"]
                pages.append(self.page_fields(page, len(got)))
                results.extend(self.result_fields(m) for m in got)
        else:
            raise Failure("unknown mam mode %r" % mode)
        return results, pages

    async def do(self, a):
        op = a["op"]
        x = self.xmpp
        timeout = float(a.get("timeout", self.default_timeout))
        if op in ("carbons_enable", "carbons_disable"):
            plugin = x["xep_0280"]
            toggle = plugin.enable if op == "carbons_enable" else plugin.disable
            res = await toggle(timeout=timeout)
            if res["type"] != "result":
                raise Failure("%s answered %s" % (op, res))
            emit("carbons", op=op.split("_")[1])
        elif op == "send" and a.get("private"):
            m = x.make_message(mto=a["to"], mbody=a["body"], mtype=a.get("type", "chat"))
            m.enable("carbon_private")
            m.send()
            emit("sent", op=op, to=a["to"], body=a["body"], raw=str(m))
        elif op == "mark":
            emit("mark", op=a["name"])
        elif op == "wait_carbon":
            def check():
                return any(d == a["dir"] and m["body"] == a["body"] for d, m in self.carbons)
            try:
                await self.wait_for("%s carbon %r" % (a["dir"], a["body"]), timeout, check)
            except Timeout as e:
                raise Timeout("%s; carbons so far: %s" % (e, [(d, m["body"]) for d, m in self.carbons]))
        elif op == "mam":
            try:
                results, pages = await self.mam(a, timeout)
            except IqError as e:
                emit("mam_error", op=a["name"], condition=e.condition, raw=str(e.iq))
                return
            emit("mam", op=a["name"], results=results, pages=pages)
        else:
            await super().do(a)


if __name__ == "__main__":
    import runner
    runner.run(MAMCarbonsDriver)
