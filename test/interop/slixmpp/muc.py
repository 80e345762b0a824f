#!/usr/bin/python3
"""driver.py with slixmpp's XEP-0045 plugin (xep_0045), for multi-user chat.

Same JSON config and events as driver.py, plus these actions ("room" is
a room JID, "nick" a nick):
  {"op": "create", "room", "nick", "fields": {var: value}}
        join_muc_wait on a new room, then the plugin's get_room_config /
        set_room_config with the fields changed (the owner's form, §10.1);
        emits "joined" (see join) and "configured" with "fields" (every
        var of the form the server sent)
  {"op": "join", "room", "nick", "maxstanzas"}
        join_muc_wait; emits "joined" with "room", "nick", "codes" (status
        codes of the own presence), "role", "affiliation", "occupant_id",
        "occupants" (nicks present, as the plugin collected them: its own
        included), "history" (bodies) and
        "subject"
  {"op": "say", "room", "body"}      a groupchat message
  {"op": "wait_groupchat", "room", "body"}
        emits "groupchat" with "nick", "body", "stanza_id" (the id by the
        room), "occupant_id"
  {"op": "wait_occupant", "room", "nick", "type"}
        waits for a presence of room/nick ("available" or "unavailable");
        emits "occupant" with "nick", "type", "codes", "role",
        "affiliation", "jid" (the real JID when shown)
  {"op": "set_affiliation", "room", "jid", "affiliation"}
  {"op": "affiliations", "room", "affiliation"}
        emits "affiliations" with "op" = affiliation and "jids"
  {"op": "kick", "room", "nick", "reason"}    set_role(nick, "none")
  {"op": "subject", "room", "subject"}       set_subject
  {"op": "wait_subject", "room", "subject"}  emits "subject"
  {"op": "invite", "room", "jid", "reason"}  a mediated invitation
  {"op": "leave", "room", "nick"}
  {"op": "destroy", "room", "reason", "alt"}
  {"op": "mark", "name"}                     emits "mark" with "op" = name
An IQ the server refuses emits "muc_error" with "op" and "condition".
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402  (exits 3 when slixmpp is missing)
from driver import Driver, Failure, Timeout, emit  # noqa: E402

from slixmpp import JID  # noqa: E402
from slixmpp.exceptions import IqError, PresenceError  # noqa: E402

NS_USER = "http://jabber.org/protocol/muc#user"
NS_SID = "urn:xmpp:sid:0"
NS_OID = "urn:xmpp:occupant-id:0"


def codes_of(st):
    x = st.xml.find("{%s}x" % NS_USER)
    if x is None:
        return []
    return sorted(int(s.get("code")) for s in x.findall("{%s}status" % NS_USER))


def occupant_id(st):
    el = st.xml.find("{%s}occupant-id" % NS_OID)
    return "" if el is None else el.get("id", "")


class MUCDriver(Driver):
    def __init__(self, cfg):
        super().__init__(cfg)
        x = self.xmpp
        for p in ("xep_0030", "xep_0004", "xep_0045"):
            x.register_plugin(p)
        self.groupchat = []  # messages of rooms
        self.occupants = []  # presences of rooms
        self.subjects = []
        x.add_event_handler("groupchat_message", self._on_groupchat)
        x.add_event_handler("groupchat_presence", self._on_presence)
        x.add_event_handler("groupchat_subject", self._on_subject)

    def _on_groupchat(self, m):
        self.groupchat.append(m)
        self.changed.set()

    def _on_presence(self, p):
        self.occupants.append(p)
        self.changed.set()

    def _on_subject(self, m):
        self.subjects.append(m)
        self.changed.set()

    def stanza_id(self, m, room):
        for el in m.xml.findall("{%s}stanza-id" % NS_SID):
            if el.get("by") == room:
                return el.get("id", "")
        return ""

    async def join(self, a, timeout):
        muc = self.xmpp["xep_0045"]
        kwargs = {"timeout": timeout}
        if "maxstanzas" in a:
            kwargs["maxstanzas"] = int(a["maxstanzas"])
        if a.get("password"):
            kwargs["password"] = a["password"]
        try:
            pres, subject, occupants, history = await muc.join_muc_wait(JID(a["room"]), a["nick"], **kwargs)
        except PresenceError as e:
            emit("join_error", op=a["room"], condition=e.condition)
            return None
        item = pres["muc"]
        emit("joined", room=a["room"], nick=a["nick"], codes=codes_of(pres), role=item["role"],
             affiliation=item["affiliation"], occupant_id=occupant_id(pres),
             occupants=sorted(p["from"].resource for p in occupants),
             history=[m["body"] for m in history], subject=subject["subject"],
             # the plugin's own XEP-0082 parser reads each delay stamp
             history_stamps=[m["delay"]["stamp"].isoformat() for m in history])
        return pres

    async def do(self, a):
        op = a["op"]
        x = self.xmpp
        muc = x["xep_0045"]
        timeout = float(a.get("timeout", self.default_timeout))
        room = JID(a["room"]) if a.get("room") else None
        try:
            await self.do_muc(op, a, x, muc, room, timeout)
        except IqError as e:
            emit("muc_error", op=op, condition=e.condition, raw=str(e.iq))

    async def do_muc(self, op, a, x, muc, room, timeout):
        if op == "create":
            pres = await self.join(a, timeout)
            if pres is None:
                raise Failure("could not create %s" % room)
            form = await muc.get_room_config(room, timeout=timeout)
            have = form.get_fields()
            fields = sorted(have.keys())
            for var, value in a.get("fields", {}).items():
                have[var]["value"] = value
            await muc.set_room_config(room, form, timeout=timeout)
            emit("configured", op=str(room), fields=fields)
        elif op == "join":
            if await self.join(a, timeout) is None:
                return
        elif op == "say":
            x.send_message(mto=room, mbody=a["body"], mtype="groupchat")
            emit("sent", op=op, to=str(room), body=a["body"])
        elif op == "wait_groupchat":
            def check():
                for m in self.groupchat:
                    if m["from"].bare == room and m["body"] == a["body"]:
                        return m
                return None
            try:
                m = await self.wait_for("groupchat %r in %s" % (a["body"], room), timeout, check)
            except Timeout as e:
                raise Timeout("%s; got %s" % (e, [str(m) for m in self.groupchat]))
            emit("groupchat", op=a["body"], nick=m["from"].resource, body=m["body"],
                 stanza_id=self.stanza_id(m, str(room)), occupant_id=occupant_id(m))
        elif op == "wait_occupant":
            typ = a.get("type", "available")

            def check():
                for p in self.occupants:
                    if p["from"].bare == room and p["from"].resource == a["nick"] and p["type"] == typ:
                        if not a.get("code") or int(a["code"]) in codes_of(p):
                            return p
                return None
            try:
                p = await self.wait_for("%s presence of %s/%s" % (typ, room, a["nick"]), timeout, check)
            except Timeout as e:
                raise Timeout("%s; got %s" % (e, [str(p) for p in self.occupants]))
            item = p["muc"]
            emit("occupant", op=a["nick"], nick=a["nick"], type=p["type"], codes=codes_of(p),
                 role=item["role"], affiliation=item["affiliation"], jid=str(item["jid"]))
        elif op == "set_affiliation":
            await muc.set_affiliation(room, a["affiliation"], jid=JID(a["jid"]), timeout=timeout)
            emit("affiliation_set", op=a["jid"], affiliation=a["affiliation"])
        elif op == "affiliations":
            jids = await muc.get_affiliation_list(room, a["affiliation"], timeout=timeout)
            emit("affiliations", op=a["affiliation"], jids=sorted(str(j) for j in jids))
        elif op == "kick":
            await muc.set_role(room, a["nick"], "none", reason=a.get("reason", ""), timeout=timeout)
            emit("kicked", op=a["nick"])
        elif op == "subject":
            muc.set_subject(room, a["subject"])
            emit("sent", op=op, to=str(room), body=a["subject"])
        elif op == "wait_subject":
            def check():
                return any(m["from"].bare == room and m["subject"] == a["subject"] for m in self.subjects)
            await self.wait_for("subject %r in %s" % (a["subject"], room), timeout, check)
            emit("subject", op=a["subject"])
        elif op == "invite":
            muc.invite(room, JID(a["jid"]), reason=a.get("reason", ""))
            emit("sent", op=op, to=a["jid"])
        elif op == "leave":
            muc.leave_muc(room, a["nick"])
            emit("sent", op=op, to=str(room))
        elif op == "destroy":
            alt = JID(a["alt"]) if a.get("alt") else None
            await muc.destroy(room, reason=a.get("reason", ""), altroom=alt, timeout=timeout)
            emit("destroyed", op=str(room))
        elif op == "mark":
            emit("mark", op=a["name"])
        else:
            await Driver.do(self, a)


if __name__ == "__main__":
    import runner
    runner.run(MUCDriver)
