"""`python -m bench.bare PORT`: the ceiling for callback ingestion.

A bare aiohttp server with the callback route's path that only reads and parses the JSON
body and answers like the real route does; the benchmark sends it the same requests, with
the same client and concurrency, as the bot's callback route.
"""

from __future__ import annotations

import json
import sys

from aiohttp import web


async def parse_only(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    state = "succeeded" if isinstance(body, dict) else "unknown"
    return web.json_response({"ok": True, "state": state})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def main() -> int:
    port = int(sys.argv[1])
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post(r"/callbacks/{provider:[a-z0-9_-]{1,32}}/{edit_id}", parse_only)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
