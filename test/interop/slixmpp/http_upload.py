#!/usr/bin/python3
"""driver.py with slixmpp's XEP-0363 plugin (HTTP File Upload).

Same JSON config and events as driver.py, plus these actions:
  {"op": "upload", "path", "content_type"}
        find the upload service through disco (see below), request a slot
        and PUT the file with the plugin's upload_file (aiohttp); emits
        "uploaded" with "url" (the GET URL), "service" and "max_file_size"
  {"op": "download", "url"}
        GET the URL (default: the last one uploaded) with aiohttp; emits "downloaded" with "status",
        "bytes", "sha256", "content_type"

HTTPS: the config's "cafile" names the PEM certificate to trust (the test
server's self-signed one). The plugin makes its own aiohttp session, so
this script hands it a connector whose SSL context trusts exactly that
certificate (with hostname checking on). Without "cafile" the system
roots are used.

Discovery: the plugin's own find_upload_service calls xep_0030's
get_info_from_domain, which in slixmpp 1.8.3 (Debian 12) hands coroutines
to asyncio.wait and raises TypeError on Python 3.11+ (fixed upstream
later). This script does the same discovery with xep_0030 get_items and
get_info (an item with identity store/file and the urn:xmpp:http:upload:0
feature; max-file-size from its form) and gives the result to the plugin,
whose upload_file then requests the slot and uploads as usual.
"""

import asyncio
import hashlib
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402,F401  (exits 3 when slixmpp is missing)
from driver import Driver, Failure, emit  # noqa: E402
from runner import run  # noqa: E402

try:
    import aiohttp
    import slixmpp.plugins.xep_0363.http_upload as http_upload
except ImportError as e:  # pragma: no cover - reported to the Go test
    emit("error", error="aiohttp or slixmpp's xep_0363 not importable (Debian: python3-aiohttp): %s" % e)
    sys.exit(3)


NS = "urn:xmpp:http:upload:0"


def ssl_context(cafile):
    if not cafile:
        return ssl.create_default_context()
    ctx = ssl.create_default_context(cafile=cafile)
    # The test certificate is self-signed without the CA key usage: trust
    # it as a leaf (partial chain), still checking the host name.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


class UploadDriver(Driver):
    def __init__(self, cfg):
        super().__init__(cfg)
        x = self.xmpp
        for p in ("xep_0030", "xep_0128", "xep_0363"):
            x.register_plugin(p)
        self.ssl = ssl_context(cfg.get("cafile"))
        make_session = http_upload.ClientSession

        def session(*args, **kwargs):
            kwargs.setdefault("connector", aiohttp.TCPConnector(ssl=self.ssl))
            return make_session(*args, **kwargs)
        # Only for this process: the plugin's module-level ClientSession.
        http_upload.ClientSession = session
        self.last_url = None

    async def discover(self, timeout):
        disco = self.xmpp["xep_0030"]
        domain = self.xmpp.boundjid.domain
        items = await disco.get_items(jid=domain, timeout=timeout)
        for jid, _node, _name in items["disco_items"]["items"]:
            info = (await disco.get_info(jid=jid, timeout=timeout))["disco_info"]
            if not any(i[0] == "store" and i[1] == "file" for i in info["identities"]):
                continue
            if NS not in info["features"]:
                continue
            plugin = self.xmpp["xep_0363"]
            plugin.upload_service = jid
            for form in info.iterables:
                values = form["values"]
                if values.get("FORM_TYPE") == [NS]:
                    plugin.max_file_size = int(values["max-file-size"])
            return
        raise Failure("no HTTP upload service in disco#items of %s" % domain)

    async def do(self, a):
        op = a["op"]
        x = self.xmpp
        timeout = float(a.get("timeout", self.default_timeout))
        if op == "upload":
            plugin = x["xep_0363"]
            if plugin.upload_service is None:
                await self.discover(timeout)
            url = await plugin.upload_file(a["path"], content_type=a.get("content_type"), timeout=timeout)
            self.last_url = url
            emit("uploaded", url=url, service=str(plugin.upload_service),
                 max_file_size=plugin.max_file_size if plugin.max_file_size != float("inf") else -1)
        elif op == "download":
            h = hashlib.sha256()
            n = 0
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl)) as s:
                url = a.get("url") or self.last_url
                if not url:
                    raise Failure("download: no url and nothing uploaded")
                async with s.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        h.update(chunk)
                        n += len(chunk)
                    emit("downloaded", status=resp.status, bytes=n, sha256=h.hexdigest(),
                         content_type=resp.headers.get("Content-Type", ""))
        else:
            await super().do(a)


if __name__ == "__main__":
    run(UploadDriver)
