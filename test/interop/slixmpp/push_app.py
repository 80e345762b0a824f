#!/usr/bin/python3
"""A minimal XEP-0357 App Server (XMPP Push Service) on slixmpp.

It logs in like driver.py, answers every pubsub publish sent to it with an
empty result and reports it as a "publish" event:
  from, node, fields   (the urn:xmpp:push:summary form of the notification,
                        parsed with slixmpp's XEP-0060 and XEP-0004 stanzas)
  options              (the publish-options form: where the secret travels)
  raw
Actions as in driver.py, plus:
  {"op": "serve"}  emit "serving", then keep answering until stdin closes
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402  (exits 3 when slixmpp is missing)
from driver import Driver, emit  # noqa: E402

from slixmpp.plugins.xep_0004 import Form  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import StanzaPath  # noqa: E402

NS_PUSH = "urn:xmpp:push:0"


def form_values(form):
    if form is None:
        return {}
    return {k: (v if isinstance(v, str) else ",".join(v) if isinstance(v, list) else str(v))
            for k, v in form.get_values().items()}


class AppServer(Driver):
    def __init__(self, cfg):
        super().__init__(cfg)
        x = self.xmpp
        x.register_plugin("xep_0004")
        x.register_plugin("xep_0060")
        x.register_handler(Callback("push publish", StanzaPath("iq@type=set/pubsub/publish"), self._publish))

    def _publish(self, iq):
        pub = iq["pubsub"]["publish"]
        fields = {}
        for item in pub:
            payload = item["payload"]
            if payload is None or payload.tag != "{%s}notification" % NS_PUSH:
                continue
            x = payload.find("{jabber:x:data}x")
            if x is not None:
                fields = form_values(Form(xml=x))
        options = form_values(iq["pubsub"]["publish_options"])
        emit("publish", **{"from": str(iq["from"]), "node": pub["node"], "fields": fields,
                           "options": options, "raw": str(iq)})
        iq.reply(clear=True).send()

    async def do(self, a):
        if a["op"] == "serve":
            emit("serving")
            loop = asyncio.get_running_loop()
            while await loop.run_in_executor(None, sys.stdin.readline):
                pass
        else:
            await super().do(a)


if __name__ == "__main__":
    import runner
    runner.run(AppServer)
