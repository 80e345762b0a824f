#!/usr/bin/python3
"""Drive one slixmpp client through a list of actions against a Parley server.

Usage: /usr/bin/python3 driver.py '<json>'   (or the JSON on stdin)

The JSON object has:
  host, port       where to connect (STARTTLS is required)
  jid, password    the account; jid may carry the resource to bind
  tls_max          "1.2" caps the TLS version (default: whatever both sides
                   have, i.e. TLS 1.3)
  timeout          default seconds for each wait action (default 10)
  deadline         seconds for the whole run (default 60)
  actions          list of {"op": ...} objects, run in order after the
                   session has started (see ACTIONS below)

Every result is one JSON object per line on stdout with an "event" key:
  login      after session start: jid, mechanism, offered, tls, gs2_header
  auth_failure  a SASL <failure/> before a retry with the next mechanism
  roster     {"items": {bare: {"subscription", "ask", "name", "groups"}}}
             as slixmpp's own roster sees them, plus "server" with the
             items of the roster result the server returned
  presence   a presence that a wait action matched
  message    a message that a wait action matched (with "delay" or null)
  sent       a stanza the driver sent
  done       all actions finished
  error      something failed; the process then exits 1
  timeout    a wait did not finish in time; the process then exits 2

Certificate verification is off: test servers use a self-signed certificate.
"""

import asyncio
import json
import os
import ssl
import sys
import time

try:
    import slixmpp
    from slixmpp import ClientXMPP
except ImportError as e:  # pragma: no cover - reported to the Go test
    print(json.dumps({"event": "error", "error": "slixmpp not importable: %s" % e}), flush=True)
    sys.exit(3)


def emit(event, **fields):
    fields["event"] = event
    print(json.dumps(fields, sort_keys=True), flush=True)


class Timeout(Exception):
    pass


class Failure(Exception):
    pass


class Driver:
    def __init__(self, cfg):
        self.cfg = cfg
        self.default_timeout = float(cfg.get("timeout", 10))
        # slixmpp chooses its SASL mechanism itself, as for any user: the
        # tests prove what a stock client gets.
        self.xmpp = ClientXMPP(cfg["jid"], cfg["password"])
        x = self.xmpp
        # Do everything explicitly: no automatic subscription handling.
        x.auto_authorize = None
        x.auto_subscribe = False
        x.ssl_context.check_hostname = False
        x.ssl_context.verify_mode = ssl.CERT_NONE
        if cfg.get("tls_max") == "1.2":
            x.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
        # slixmpp 1.8 knows only the tls-unique channel binding, which TLS
        # 1.3 does not have (RFC 9266): there its -PLUS attempts fail and it
        # falls back to a non-PLUS mechanism with the gs2 flag 'y', which
        # the server accepts (see auth/scram.go). On TLS 1.2 the server
        # has tls-unique and the first attempt succeeds. "channel_binding":
        # false is only for experiments by hand.
        self.channel_binding = cfg.get("channel_binding", True)
        fm = x["feature_mechanisms"]
        default_credentials = fm.sasl_callback

        def credentials(required, optional):
            got = default_credentials(required, optional)
            if not self.channel_binding and "channel_binding" in got:
                got["channel_binding"] = None
            return got
        fm.sasl_callback = credentials
        x.register_plugin("xep_0203")  # delayed delivery
        x.register_plugin("xep_0199")  # ping (answers server pings)
        x.register_plugin("xep_0012")  # last activity

        self.loop = asyncio.get_running_loop()
        self.session = self.loop.create_future()
        self.backlog = []  # ("message"|"presence", stanza)
        self.changed = asyncio.Event()
        self.last_roster_result = None

        x.add_event_handler("session_start", self._on_session)
        x.add_event_handler("failed_all_auth", lambda _=None: self._fail_session("authentication failed (all mechanisms)"))
        x.add_event_handler("failed_auth", self._on_failed_auth)
        x.add_event_handler("no_auth", lambda _=None: self._fail_session("no appropriate SASL mechanism"))
        x.add_event_handler("disconnected", lambda _=None: self._fail_session("disconnected before session start"))
        x.add_event_handler("connection_failed", lambda e=None: self._fail_session("connection failed: %s" % e))
        x.add_event_handler("stream_error", lambda e=None: self._push("stream_error", e))
        x.add_event_handler("message", lambda m: self._push("message", m))
        x.add_event_handler("presence", lambda p: self._push("presence", p))
        x.add_event_handler("roster_update", lambda _=None: self.changed.set())

    # --- events -----------------------------------------------------------

    def _on_session(self, _event):
        if not self.session.done():
            self.session.set_result(True)

    def _on_failed_auth(self, stanza):
        emit("auth_failure", condition=stanza["condition"], raw=str(stanza))

    def _fail_session(self, why):
        if not self.session.done():
            self.session.set_exception(Failure(why))

    def _push(self, kind, stanza):
        self.backlog.append((kind, stanza))
        self.changed.set()

    # --- helpers ----------------------------------------------------------

    async def wait_for(self, what, timeout, check):
        """Wait until check() returns a true value; return it."""
        deadline = time.monotonic() + timeout
        while True:
            got = check()
            if got:
                return got
            for kind, st in self.backlog:
                if kind == "stream_error":
                    raise Failure("stream error while waiting for %s: %s" % (what, st))
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("%s within %.1fs" % (what, timeout))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))
            except asyncio.TimeoutError:
                pass

    def take(self, kind, match):
        for i, (k, st) in enumerate(self.backlog):
            if k == kind and match(st):
                del self.backlog[i]
                return st
        return None

    def backlog_text(self):
        return [str(st) for _, st in self.backlog]

    def roster_view(self):
        items = {}
        roster = self.xmpp.client_roster
        for jid in roster:
            it = roster[jid]
            items[str(jid)] = {
                "subscription": it["subscription"],
                "ask": "subscribe" if it["pending_out"] else "",
                "name": it["name"],
                "groups": sorted(it["groups"]),
            }
        return items

    @staticmethod
    def from_matches(st, want):
        """want is a bare JID (any resource) or a full JID (exact)."""
        if not want:
            return True
        frm = st["from"]
        if "/" in want:
            return str(frm) == want
        return frm.bare == want

    @staticmethod
    def message_fields(m):
        delay = None
        if m.xml.find("{urn:xmpp:delay}delay") is not None:
            delay = {"stamp": m.xml.find("{urn:xmpp:delay}delay").get("stamp", ""),
                     "from": m.xml.find("{urn:xmpp:delay}delay").get("from", "")}
        return {"from": str(m["from"]), "to": str(m["to"]), "type": m["type"],
                "id": m["id"], "body": m["body"], "delay": delay, "raw": str(m)}

    # --- run --------------------------------------------------------------

    async def run(self):
        x = self.xmpp
        x.connect((self.cfg["host"], int(self.cfg["port"])), force_starttls=True)
        try:
            await asyncio.wait_for(self.session, float(self.cfg.get("login_timeout", 15)))
        except asyncio.TimeoutError:
            raise Timeout("session start (connect, STARTTLS, SASL, bind) within %ss"
                          % self.cfg.get("login_timeout", 15))
        mechs = x["feature_mechanisms"]
        emit("login", jid=str(x.boundjid), mechanism=mechs.mech.name if mechs.mech else "",
             offered=sorted(mechs.mech_list), tls="starttls" in x.features,
             gs2_header=mechs.mech.gs2_header.decode() if hasattr(mechs.mech, "gs2_header") else "",
             library="slixmpp", version=slixmpp.__version__)

        for action in self.cfg.get("actions", []):
            await self.do(action)
        emit("done")

    async def do(self, a):
        op = a["op"]
        x = self.xmpp
        timeout = float(a.get("timeout", self.default_timeout))
        if op == "roster":
            # slixmpp's own roster fetch (it may use roster versioning, and
            # then the result can be empty), which feeds its roster view...
            await x.get_roster(timeout=timeout)
            # ...and a plain fetch without 'ver', for the server's full view.
            iq = x.Iq()
            iq["type"] = "get"
            iq.enable("roster")
            res = await iq.send(timeout=timeout)
            server_items = {}
            for jid, item in res["roster"]["items"].items():
                server_items[str(jid)] = {"subscription": item["subscription"],
                                          "ask": item["ask"], "name": item["name"]}
            self.last_roster_result = server_items
            emit("roster", items=self.roster_view(), server=server_items)
        elif op == "presence":
            x.send_presence()
            emit("sent", op=op)
        elif op in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            x.send_presence(pto=a["to"], ptype=op)
            emit("sent", op=op, to=a["to"])
        elif op == "send":
            x.send_message(mto=a["to"], mbody=a["body"], mtype=a.get("type", "chat"))
            emit("sent", op=op, to=a["to"], body=a["body"])
        elif op == "wait_presence":
            typ = a.get("type", "available")

            def check():
                return self.take("presence", lambda p: p["type"] == typ
                                 and self.from_matches(p, a.get("from")))
            try:
                p = await self.wait_for("presence type=%s from %s" % (typ, a.get("from")), timeout, check)
            except Timeout as e:
                raise Timeout("%s; backlog: %s" % (e, self.backlog_text()))
            emit("presence", type=p["type"], **{"from": str(p["from"]), "to": str(p["to"]), "raw": str(p)})
        elif op == "wait_message":
            def check():
                return self.take("message", lambda m: m["type"] != "error"
                                 and m["body"] == a["body"] and self.from_matches(m, a.get("from")))
            try:
                m = await self.wait_for("message %r from %s" % (a["body"], a.get("from")), timeout, check)
            except Timeout as e:
                raise Timeout("%s; backlog: %s" % (e, self.backlog_text()))
            emit("message", **self.message_fields(m))
        elif op == "wait_roster":
            jid, sub = a["jid"], a.get("subscription", "both")

            def check():
                r = self.xmpp.client_roster
                return jid in r and r[jid]["subscription"] == sub
            try:
                await self.wait_for("roster item %s with subscription %s" % (jid, sub), timeout, check)
            except Timeout as e:
                raise Timeout("%s; roster: %s" % (e, json.dumps(self.roster_view())))
            emit("roster_item", jid=jid, item=self.roster_view()[jid])
        elif op == "ping":
            # A round trip to our own server: everything sent before has
            # been processed by the time the answer arrives.
            await x["xep_0199"].ping(jid=x.boundjid.domain, timeout=timeout)
            emit("pong")
        elif op == "last_activity":
            # XEP-0012 through slixmpp's xep_0012 plugin: the answer, or
            # the error condition.
            try:
                r = await x["xep_0012"].get_last_activity(a["to"], timeout=timeout)
                emit("last_activity", to=a["to"], seconds=int(r["last_activity"]["seconds"]),
                     status=r["last_activity"]["status"])
            except slixmpp.exceptions.IqError as e:
                emit("last_activity", to=a["to"], condition=e.iq["error"]["condition"])
        elif op == "sleep":
            await asyncio.sleep(float(a["seconds"]))
        else:
            raise Failure("unknown op %r" % op)

    async def close(self):
        x = self.xmpp
        if x.transport is None:
            return
        try:
            await asyncio.wait_for(x.disconnect(wait=2.0), 5)
        except Exception:
            x.abort()


if __name__ == "__main__":
    # Run the imported module's Driver, not this __main__ copy, so that
    # runner's except clauses see the same Timeout class it raises.
    import driver
    from runner import run
    run(driver.Driver)
