"""run(cls): the command line of a driver script — JSON config from argv or
stdin, the whole run bounded by its deadline, and the outcome reported as
driver.py's "timeout"/"error" events and exit codes."""

import asyncio
import json
import logging
import os
import sys

from driver import Timeout, emit


async def _main(cls, cfg):
    d = cls(cfg)
    try:
        await asyncio.wait_for(d.run(), float(cfg.get("deadline", 60)))
    finally:
        await d.close()


def run(cls):
    raw = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    cfg = json.loads(raw)
    if os.environ.get("INTEROP_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
    else:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        asyncio.run(_main(cls, cfg))
    except Timeout as e:
        emit("timeout", error="timed out waiting for " + str(e))
        sys.exit(2)
    except asyncio.TimeoutError:
        emit("timeout", error="whole run exceeded deadline of %ss" % cfg.get("deadline", 60))
        sys.exit(2)
    except Exception as e:
        emit("error", error="%s: %s" % (type(e).__name__, e))
        sys.exit(1)
