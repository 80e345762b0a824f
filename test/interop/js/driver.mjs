// Drive one xmpp.js (@xmpp/client) client through a list of actions
// against a Parley server. The twin of ../slixmpp/driver.py: same JSON
// arguments, same actions, same JSON-lines output.
//
// Usage: node driver.mjs '<json>'   (or the JSON on stdin)
//
// The JSON object has:
//   service          xmpp://127.0.0.1:PORT (TCP, STARTTLS required) or
//                    ws://127.0.0.1:PORT/xmpp-websocket
//   domain           the XMPP domain (default "localhost")
//   jid, password    the account; jid may carry the resource to bind
//   mechanism        SASL mechanism to use (default SCRAM-SHA-1: xmpp.js
//                    0.14 implements only SCRAM-SHA-1, PLAIN and ANONYMOUS;
//                    with a FAST token it uses HT-SHA-256-NONE instead)
//   user_agent       the XEP-0388 <user-agent id=…/> (a UUID) sent with SASL2
//                    (default: a random one, as xmpp.js does)
//   timeout          default seconds for each wait action (default 10)
//   deadline         seconds for the whole run (default 60)
//   actions          list of {"op": ...}; see do() below
//
// Multi-user chat (XEP-0045; xmpp.js has no MUC plugin, so these build
// the stanzas with xml()):
//   muc_join {room, nick, create}  join (creating an instant room when
//                    create is set); emits "joined" with codes, role,
//                    affiliation, occupant_id, history bodies, subject
//   muc_say {room, body}           a groupchat message
//   muc_wait {room, body}          emits "groupchat" with nick, body,
//                    stanza_id (by the room), occupant_id, delayed
//   muc_leave {room, nick}         emits "left" with the status codes
//
// xmpp.js 0.14 logs in with SASL2 (XEP-0388) when the server offers it,
// binds with Bind2 (XEP-0386; the resource it is given is the tag, the
// server appends an identifier), enables stream management inline and
// asks for a FAST token (XEP-0484), which a later login in the same
// process ("reconnect") uses instead of the password.
//
// Output: one JSON object per line with an "event" key (login, fast_token,
// resumed, roster, roster_item, presence, message, sent, pong, joined,
// groupchat, left, done, error, timeout);
// exit 0 after "done", 1 after "error", 2 after "timeout".
//
// Certificate verification is off (NODE_TLS_REJECT_UNAUTHORIZED=0): test
// servers use a self-signed certificate.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

const raw = process.argv[2] ?? readFileSync(0, "utf8");
const cfg = JSON.parse(raw);

// Node 20 has a WebSocket global only behind a flag; @xmpp/websocket needs it.
if (typeof globalThis.WebSocket === "undefined" && !process.env.INTEROP_WS_REEXEC) {
  const r = spawnSync(
    process.execPath,
    ["--experimental-websocket", ...process.argv.slice(1, 2), raw],
    { stdio: "inherit", env: { ...process.env, INTEROP_WS_REEXEC: "1" } },
  );
  process.exit(r.status ?? 1);
}

process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
// Silence Node's warning about the line above; everything else still warns.
const origEmitWarning = process.emitWarning;
process.emitWarning = (w, ...rest) => {
  if (String(w).includes("NODE_TLS_REJECT_UNAUTHORIZED")) return;
  origEmitWarning.call(process, w, ...rest);
};

const { client, xml, jid: parseJID } = await import("@xmpp/client");
const clientPkg = JSON.parse(
  readFileSync(new URL("./node_modules/@xmpp/client/package.json", import.meta.url), "utf8"),
);

const NS_ROSTER = "jabber:iq:roster";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_SASL2 = "urn:xmpp:sasl:2";
const NS_STREAM = "http://etherx.jabber.org/streams";

function emit(event, fields = {}) {
  const o = { ...fields, event };
  const sorted = Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
  process.stdout.write(JSON.stringify(sorted) + "\n");
}

class Timeout extends Error {}

const defaultTimeout = Number(cfg.timeout ?? 10);
const own = parseJID(cfg.jid);
const mechanism = cfg.mechanism ?? "SCRAM-SHA-1";

const userAgent = xml("user-agent", { id: cfg.user_agent ?? globalThis.crypto.randomUUID() },
  xml("software", {}, "parley interop driver (xmpp.js)"));
const xmpp = client({
  service: cfg.service,
  domain: cfg.domain ?? own.domain,
  resource: own.resource || undefined,
  userAgent,
  // Like xmpp.js's own default credentials handler, plus a check that the
  // mechanism we want is usable; fast is set on SASL2 streams with FAST.
  credentials: async (authenticate, mechanisms, fast) => {
    if (!mechanisms.includes(mechanism)) {
      throw new Error(
        `mechanism ${mechanism} not usable: xmpp.js and the server share only [${mechanisms.join(", ")}]`,
      );
    }
    const creds = { username: own.local, password: cfg.password };
    if (fast) creds.token = await fast.fetch();
    await authenticate(creds, mechanism, userAgent);
  },
});
xmpp.reconnect.stop(); // a test client must never reconnect silently

let offered = [];
let authMechanism = "";
let authSASL2 = false;
let sawStartTLS = false;
const backlog = []; // {kind, el}
let wake = () => {};
let changed = new Promise((r) => (wake = r));
function notify() {
  wake();
  changed = new Promise((r) => (wake = r));
}
let fatal = null;

xmpp.on("element", (el) => {
  if (el.is("features", NS_STREAM)) {
    const m = el.getChild("mechanisms", NS_SASL);
    if (m) offered = m.getChildren("mechanism").map((c) => c.text()).sort();
  }
});
xmpp.on("send", (el) => {
  if (el.is("auth", NS_SASL)) [authMechanism, authSASL2] = [el.attrs.mechanism, false];
  if (el.is("authenticate", NS_SASL2)) [authMechanism, authSASL2] = [el.attrs.mechanism, true];
  if (el.name === "starttls") sawStartTLS = true;
});
xmpp.on("stanza", (el) => {
  if (el.is("message") || el.is("presence")) {
    backlog.push({ kind: el.name, el });
    notify();
  }
});
xmpp.on("error", (err) => {
  fatal ??= err;
  notify();
});
xmpp.on("offline", () => {
  fatal ??= new Error("went offline");
  notify();
});

// The roster as this client sees it: the roster result plus pushes.
const roster = new Map();
function rosterItem(item) {
  return {
    subscription: item.attrs.subscription ?? "none",
    ask: item.attrs.ask ?? "",
    name: item.attrs.name ?? "",
    groups: item.getChildren("group").map((g) => g.text()).sort(),
  };
}
function rosterView() {
  return Object.fromEntries([...roster.entries()].sort());
}
xmpp.iqCallee.set(NS_ROSTER, "query", (ctx) => {
  const from = ctx.stanza.attrs.from;
  if (from && from !== own.bare().toString()) {
    return xml("error", { type: "cancel" }, xml("service-unavailable", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }));
  }
  for (const item of ctx.element.getChildren("item")) {
    if (item.attrs.subscription === "remove") roster.delete(item.attrs.jid);
    else roster.set(item.attrs.jid, rosterItem(item));
  }
  notify();
  return true;
});

function fromMatches(el, want) {
  if (!want) return true;
  const from = el.attrs.from ?? "";
  if (want.includes("/")) return from === want;
  return from === want || from.startsWith(want + "/");
}

function take(kind, match) {
  const i = backlog.findIndex((b) => b.kind === kind && match(b.el));
  if (i < 0) return null;
  return backlog.splice(i, 1)[0].el;
}

function backlogText() {
  return backlog.map((b) => b.el.toString());
}

async function waitFor(what, timeout, check) {
  const deadline = Date.now() + timeout * 1000;
  for (;;) {
    const got = check();
    if (got) return got;
    if (fatal) throw new Error(`${fatal.message ?? fatal} while waiting for ${what}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Timeout(`${what} within ${timeout}s`);
    await Promise.race([changed, new Promise((r) => setTimeout(r, Math.min(left, 200)))]);
  }
}

function withTimeout(promise, seconds, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Timeout(`${what} within ${seconds}s`)), seconds * 1000);
    }),
  ]).finally(() => clearTimeout(t));
}

function messageFields(m) {
  const d = m.getChild("delay", "urn:xmpp:delay");
  return {
    from: m.attrs.from ?? "",
    to: m.attrs.to ?? "",
    type: m.attrs.type ?? "",
    id: m.attrs.id ?? "",
    body: m.getChildText("body") ?? "",
    delay: d ? { stamp: d.attrs.stamp ?? "", from: d.attrs.from ?? "" } : null,
    raw: m.toString(),
  };
}

// A FAST token the server handed out: reported (not the secret itself),
// then kept in memory by xmpp.js for the next login.
const saveToken = xmpp.fast.saveToken.bind(xmpp.fast);
xmpp.fast.saveToken = async (t) => {
  emit("fast_token", { mechanism: t.mechanism, expiry: t.expiry ?? "", length: t.token?.length ?? 0 });
  await saveToken(t);
};
let resumedCount = 0;
xmpp.streamManagement.on("resumed", () => {
  resumedCount++;
  notify();
});

let sendSeq = 0;

const NS_MUC = "http://jabber.org/protocol/muc";
const NS_MUC_USER = NS_MUC + "#user";
const NS_SID = "urn:xmpp:sid:0";
const NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0";

function statusCodes(st) {
  const x = st.getChild("x", NS_MUC_USER);
  return (x?.getChildren("status") ?? []).map((s) => Number(s.attrs.code)).sort((a, b) => a - b);
}

// mucJoin: presence to room/nick, then what the room sends until the
// subject (occupants, own presence with 110, history), §7.2.
async function mucJoin(a, timeout) {
  const full = `${a.room}/${a.nick}`;
  await xmpp.send(xml("presence", { to: full }, xml("x", { xmlns: NS_MUC })));
  const self = await waitFor(`own presence in ${a.room}`, timeout, () =>
    take("presence", (el) => el.attrs.from === full && (el.attrs.type === undefined || el.attrs.type === "error") &&
      (el.attrs.type === "error" || statusCodes(el).includes(110))),
  );
  if (self.attrs.type === "error") throw new Error(`join refused: ${self.toString()}`);
  const codes = statusCodes(self);
  if (a.create) {
    if (!codes.includes(201)) throw new Error(`room not new: ${self.toString()}`);
    await xmpp.iqCaller.request(
      xml("iq", { type: "set", to: a.room, id: `cfg${++sendSeq}` },
        xml("query", { xmlns: NS_MUC + "#owner" }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))),
      timeout * 1000,
    );
  }
  const history = [];
  let subject;
  await waitFor(`subject of ${a.room}`, timeout, () => {
    for (;;) {
      const m = take("message", (el) => el.attrs.type === "groupchat" && fromMatches(el, a.room));
      if (!m) return false;
      if (m.getChild("subject") && !m.getChild("body")) {
        subject = m.getChildText("subject") ?? "";
        return true;
      }
      history.push(m.getChildText("body"));
    }
  });
  const item = self.getChild("x", NS_MUC_USER)?.getChild("item");
  emit("joined", {
    op: a.room,
    codes,
    role: item?.attrs.role ?? "",
    affiliation: item?.attrs.affiliation ?? "",
    occupant_id: self.getChild("occupant-id", NS_OCCUPANT_ID)?.attrs.id ?? "",
    history,
    subject,
  });
}

async function login() {
  const address = await withTimeout(
    xmpp.start(),
    Number(cfg.login_timeout ?? 15),
    "session start (connect, STARTTLS, SASL, bind)",
  );
  emit("login", {
    jid: address.toString(),
    mechanism: authMechanism,
    sasl2: authSASL2,
    offered,
    // tls: the stream is encrypted (STARTTLS on TCP, wss:// on WebSocket);
    // secure: xmpp.js's own view, which also counts ws:// to loopback.
    tls: cfg.service.startsWith("xmpp:") ? sawStartTLS && xmpp.isSecure() : cfg.service.startsWith("wss:"),
    secure: xmpp.isSecure(),
    starttls: sawStartTLS,
    library: "xmpp.js",
    version: clientPkg.version,
  });
}

async function run() {
  await login();
  for (const a of cfg.actions ?? []) await act(a);
  emit("done");
}

async function act(a) {
  const timeout = Number(a.timeout ?? defaultTimeout);
  switch (a.op) {
    case "roster": {
      const res = await xmpp.iqCaller.request(
        xml("iq", { type: "get", id: `roster${++sendSeq}` }, xml("query", { xmlns: NS_ROSTER })),
        timeout * 1000,
      );
      const server = {};
      roster.clear();
      for (const item of res.getChild("query", NS_ROSTER)?.getChildren("item") ?? []) {
        const it = rosterItem(item);
        server[item.attrs.jid] = { subscription: it.subscription, ask: it.ask, name: it.name };
        roster.set(item.attrs.jid, it);
      }
      emit("roster", { items: rosterView(), server });
      break;
    }
    case "presence":
      await xmpp.send(xml("presence"));
      emit("sent", { op: a.op });
      break;
    case "subscribe":
    case "subscribed":
    case "unsubscribe":
    case "unsubscribed":
      await xmpp.send(xml("presence", { to: a.to, type: a.op }));
      emit("sent", { op: a.op, to: a.to });
      break;
    case "send":
      await xmpp.send(
        xml("message", { to: a.to, type: a.type ?? "chat", id: `m${++sendSeq}` }, xml("body", {}, a.body)),
      );
      emit("sent", { op: a.op, to: a.to, body: a.body });
      break;
    case "wait_presence": {
      const type = a.type ?? "available";
      let p;
      try {
        p = await waitFor(`presence type=${type} from ${a.from}`, timeout, () =>
          take("presence", (el) => (el.attrs.type ?? "available") === type && fromMatches(el, a.from)),
        );
      } catch (e) {
        if (e instanceof Timeout) e.message += `; backlog: ${JSON.stringify(backlogText())}`;
        throw e;
      }
      emit("presence", { type, from: p.attrs.from ?? "", to: p.attrs.to ?? "", raw: p.toString() });
      break;
    }
    case "wait_message": {
      let m;
      try {
        m = await waitFor(`message ${JSON.stringify(a.body)} from ${a.from}`, timeout, () =>
          take(
            "message",
            (el) => el.attrs.type !== "error" && el.getChildText("body") === a.body && fromMatches(el, a.from),
          ),
        );
      } catch (e) {
        if (e instanceof Timeout) e.message += `; backlog: ${JSON.stringify(backlogText())}`;
        throw e;
      }
      emit("message", messageFields(m));
      break;
    }
    case "wait_roster": {
      const sub = a.subscription ?? "both";
      try {
        await waitFor(`roster item ${a.jid} with subscription ${sub}`, timeout, () => roster.get(a.jid)?.subscription === sub);
      } catch (e) {
        if (e instanceof Timeout) e.message += `; roster: ${JSON.stringify(rosterView())}`;
        throw e;
      }
      emit("roster_item", { jid: a.jid, item: roster.get(a.jid) });
      break;
    }
    case "ping": {
      // A round trip to our own server; an error reply counts too.
      const ping = xml("iq", { type: "get", to: own.domain, id: `ping${++sendSeq}` }, xml("ping", { xmlns: "urn:xmpp:ping" }));
      try {
        await xmpp.iqCaller.request(ping, timeout * 1000);
      } catch (e) {
        if (!e.element && !(e.name === "StanzaError")) throw e;
      }
      emit("pong");
      break;
    }
    case "reconnect":
      // Log out and in again in this process: with a FAST token from the
      // first login, xmpp.js uses it instead of the password.
      await withTimeout(xmpp.stop(), timeout, "stop");
      fatal = null; // that "offline" was ours
      await login();
      break;
    case "drop_resume": {
      // The network goes away without the stream being closed; xmpp.js
      // then resumes its stream management session, inline in SASL2.
      const before = resumedCount;
      await xmpp._closeSocket(); // the connection goes, the stream is not closed
      await withTimeout(
        (async () => {
          await xmpp.connect(cfg.service);
          await xmpp.open({ domain: cfg.domain ?? own.domain, lang: "en" });
        })(),
        timeout,
        "reconnecting",
      );
      await waitFor("stream resumption", timeout, () => resumedCount > before);
      emit("resumed", { jid: xmpp.jid?.toString() ?? "", mechanism: authMechanism, sasl2: authSASL2 });
      break;
    }
    case "sleep":
      await new Promise((r) => setTimeout(r, Number(a.seconds) * 1000));
      break;
    case "muc_join":
      await mucJoin(a, timeout);
      break;
    case "muc_say":
      await xmpp.send(xml("message", { to: a.room, type: "groupchat", id: `g${++sendSeq}` }, xml("body", {}, a.body)));
      emit("sent", { op: a.op, to: a.room, body: a.body });
      break;
    case "muc_wait": {
      const m = await waitFor(`groupchat ${JSON.stringify(a.body)} in ${a.room}`, timeout, () =>
        take("message", (el) => el.attrs.type === "groupchat" && fromMatches(el, a.room) && el.getChildText("body") === a.body),
      );
      const sid = m.getChildren("stanza-id", NS_SID).find((e) => e.attrs.by === a.room);
      emit("groupchat", {
        op: a.body,
        nick: parseJID(m.attrs.from).resource,
        body: m.getChildText("body"),
        stanza_id: sid?.attrs.id ?? "",
        occupant_id: m.getChild("occupant-id", NS_OCCUPANT_ID)?.attrs.id ?? "",
        delayed: m.getChild("delay", "urn:xmpp:delay") !== undefined,
      });
      break;
    }
    case "muc_leave": {
      await xmpp.send(xml("presence", { to: `${a.room}/${a.nick}`, type: "unavailable" }));
      const p = await waitFor(`own unavailable presence in ${a.room}`, timeout, () =>
        take("presence", (el) => el.attrs.from === `${a.room}/${a.nick}` && el.attrs.type === "unavailable"),
      );
      emit("left", { op: a.room, codes: statusCodes(p) });
      break;
    }
    default:
      throw new Error(`unknown op ${JSON.stringify(a.op)}`);
  }
}

async function close() {
  try {
    await withTimeout(xmpp.stop(), 5, "stop");
  } catch {
    xmpp.socket?.end?.();
  }
}

let code = 0;
try {
  await withTimeout(run(), Number(cfg.deadline ?? 60), "the whole run");
} catch (e) {
  if (e instanceof Timeout) {
    emit("timeout", { error: `timed out waiting for ${e.message}` });
    code = 2;
  } else {
    emit("error", { error: `${e.name ?? "Error"}: ${e.message ?? e}${e.condition ? ` (condition ${e.condition})` : ""}` });
    code = 1;
  }
}
await close();
process.exit(code);
