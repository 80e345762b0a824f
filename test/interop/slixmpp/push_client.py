#!/usr/bin/python3
"""sm_resume.py with XEP-0357 push enable/disable.

Debian's slixmpp 1.8.3 ships no XEP-0357 plugin, so this script adds the
two stanzas (<enable/> and <disable/> in urn:xmpp:push:0) as slixmpp
stanza plugins on Iq and sends them with slixmpp's own Iq machinery; the
publish-options form is built with slixmpp's XEP-0004 plugin.

Same JSON config and events as sm_resume.py, plus these actions:
  {"op": "push_enable", "jid": ..., "node": ..., "secret": ...}
      enable push to the App Server jid/node with a publish-options form
      carrying the secret; emits "push_enabled"
  {"op": "push_disable", "jid": ..., "node": ...}
      disable it (node optional); emits "push_disabled"
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402  (exits 3 when slixmpp is missing)
import sm_resume  # noqa: E402
from driver import Failure, emit  # noqa: E402

from slixmpp import Iq  # noqa: E402
from slixmpp.plugins.xep_0004 import Form  # noqa: E402
from slixmpp.xmlstream import ElementBase, register_stanza_plugin  # noqa: E402

NS_PUSH = "urn:xmpp:push:0"
NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"


class PushEnable(ElementBase):
    namespace = NS_PUSH
    name = "enable"
    plugin_attrib = "push_enable"
    interfaces = {"jid", "node"}


class PushDisable(ElementBase):
    namespace = NS_PUSH
    name = "disable"
    plugin_attrib = "push_disable"
    interfaces = {"jid", "node"}


register_stanza_plugin(Iq, PushEnable)
register_stanza_plugin(Iq, PushDisable)
register_stanza_plugin(PushEnable, Form)


class PushDriver(sm_resume.SMDriver):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.xmpp.register_plugin("xep_0004")

    async def do(self, a):
        op = a["op"]
        x = self.xmpp
        timeout = float(a.get("timeout", self.default_timeout))
        if op == "push_enable":
            iq = x.Iq()
            iq["type"] = "set"
            iq["push_enable"]["jid"] = a["jid"]
            iq["push_enable"]["node"] = a["node"]
            form = x["xep_0004"].make_form(ftype="submit")
            form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_PUBLISH_OPTIONS)
            form.add_field(var="secret", value=a["secret"])
            iq["push_enable"].append(form)
            res = await iq.send(timeout=timeout)
            if res["type"] != "result":
                raise Failure("enable answered %s" % res)
            emit("push_enabled", raw=str(iq))
        elif op == "push_disable":
            iq = x.Iq()
            iq["type"] = "set"
            iq["push_disable"]["jid"] = a["jid"]
            if a.get("node"):
                iq["push_disable"]["node"] = a["node"]
            res = await iq.send(timeout=timeout)
            if res["type"] != "result":
                raise Failure("disable answered %s" % res)
            emit("push_disabled", raw=str(iq))
        else:
            await super().do(a)


if __name__ == "__main__":
    import runner
    runner.run(PushDriver)
