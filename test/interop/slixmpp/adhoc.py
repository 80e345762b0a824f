#!/usr/bin/python3
"""driver.py with XEP-0050 ad-hoc commands (slixmpp's xep_0050 plugin).

Same JSON config and events as driver.py, plus these actions:
  {"op": "commands"}      list the server's commands (disco#items on the
                          commands node); emits "commands" with "nodes"
  {"op": "command", "node": N, "fields": {var: [values]}}
                          execute N on the server; when it answers with a
                          form, submit the fields with action "complete";
                          emits "command" with "status", "notes" and the
                          result form's "values", or "command_error" with
                          the stanza error "condition" and "text"
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402  (exits 3 when slixmpp is missing)
from driver import Driver, emit  # noqa: E402
from runner import run  # noqa: E402
from slixmpp.exceptions import IqError  # noqa: E402


class AdHocDriver(Driver):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.xmpp.register_plugin("xep_0030")
        self.xmpp.register_plugin("xep_0004")
        self.xmpp.register_plugin("xep_0050")

    async def do(self, a):
        op = a["op"]
        x = self.xmpp
        timeout = float(a.get("timeout", self.default_timeout))
        server = x.boundjid.domain
        if op == "commands":
            res = await x["xep_0050"].get_commands(server, timeout=timeout)
            emit("commands", nodes=[node for (_, node, _) in res["disco_items"]["items"]])
        elif op == "command":
            node = a["node"]
            try:
                res = await x["xep_0050"].send_command(server, node, timeout=timeout)
                cmd = res["command"]
                if cmd["status"] == "executing":
                    form = x["xep_0004"].make_form(ftype="submit")
                    for var, values in a.get("fields", {}).items():
                        form.add_field(var=var, value=values if len(values) != 1 else values[0])
                    res = await x["xep_0050"].send_command(server, node, action="complete", payload=form,
                                                           sessionid=cmd["sessionid"], timeout=timeout)
                    cmd = res["command"]
                values = {}
                if cmd.xml.find("{jabber:x:data}x") is not None:
                    for var, v in cmd["form"].get_values().items():
                        values[var] = [str(i) for i in v] if isinstance(v, list) else [str(v)]
                emit("command", node=node, status=cmd["status"], values=values,
                     notes=[str(n[1]) for n in cmd["notes"]])
            except IqError as e:
                emit("command_error", node=node, condition=e.condition, text=e.text)
        else:
            await super().do(a)


if __name__ == "__main__":
    run(AdHocDriver)
