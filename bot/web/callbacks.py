"""POST /callbacks/{provider}/{edit_id}?token=...: provider completion callbacks.

The edit's state change is committed before the 200 answer, so a crash after answering
still delivers (the sweeper finds the succeeded edit); delivery itself runs in background.
Nothing about a callback is answered before its per-edit token is checked: an unknown
edit, another provider's edit and a wrong token all get the same 404, and a token of the
wrong shape is refused before any database statement. Bodies must be I-JSON (RFC 7493):
UTF-8, no lone surrogates, no NaN/Infinity, integers that fit a double exactly; anything
else is refused with 400 once the token is known to be right.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from bot.keys import SERVICES
from bot.web.errors import BadRequest
from domain.edit import is_callback_token
from domain.errors import CallbackRejected, unknown_edit

MAX_CALLBACK_BYTES = 256 * 1024
MAX_EDIT_ID = 2**63 - 1
MAX_EXACT_INT = 2**53
# Metric label for each refusal status (bounded, unlike anything taken from the request).
REFUSALS = {
    400: "invalid",
    401: "bad_signature",
    409: "task_mismatch",
}
# Refusals answered alike (404 "unknown edit") keep their own label for operators.
UNAUTHENTICATED = {"unknown edit": "unknown_edit", "bad token": "bad_token"}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _exact_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_EXACT_INT:
        raise ValueError("integer out of the exact range of a double")
    return value


# A \u escape in the surrogate range (D800-DFFF): with the text strictly UTF-8, the only
# way a lone surrogate gets in. Escaped backslashes may match too, which only costs the
# full check below.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_ijson(raw: bytes) -> Any:
    """Decode an I-JSON document; ValueError for anything else."""
    try:
        text = raw.removeprefix(codecs.BOM_UTF8).decode("utf-8")  # strict: no encoded surrogates
        body = json.loads(text, parse_constant=_refuse_constant, parse_int=_exact_int)
        if _SURROGATE_ESCAPE.search(raw):
            # Lone surrogates ("\ud800") decode fine but cannot be encoded, stored or signed.
            json.dumps(body, ensure_ascii=False).encode()
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return body


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows beyond `limit` bytes."""
    data = bytearray()
    while True:
        chunk = await request.content.read(limit + 1 - len(data))
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            return None


async def provider_callback(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    name = request.match_info["provider"]
    provider = name if name in services.registry.providers else "unknown"
    raw_id = request.match_info["edit_id"]
    if provider == "unknown" or not (raw_id.isascii() and raw_id.isdigit()):
        services.metrics.callbacks.labels(provider=provider, result="unknown_edit").inc()
        raise unknown_edit("unknown edit")
    edit_id = int(raw_id)
    if not 0 < edit_id <= MAX_EDIT_ID:
        services.metrics.callbacks.labels(provider=provider, result="unknown_edit").inc()
        raise unknown_edit("unknown edit")
    if request.content_length is not None and request.content_length > MAX_CALLBACK_BYTES:
        services.metrics.callbacks.labels(provider=provider, result="too_large").inc()
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_CALLBACK_BYTES, actual_size=request.content_length
        )
    raw = await _read_body(request, MAX_CALLBACK_BYTES)
    if raw is None:
        services.metrics.callbacks.labels(provider=provider, result="too_large").inc()
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_CALLBACK_BYTES, actual_size=MAX_CALLBACK_BYTES + 1
        )
    token = request.query.get("token", "")
    # Header values outside ASCII cannot be a signature or timestamp; parsers never see them.
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if v.isascii())
    try:
        if not is_callback_token(token):
            raise unknown_edit("bad token")  # not even worth a database statement
        try:
            body = parse_ijson(raw)
        except ValueError:
            # Only the edit's own provider learns that its body was refused.
            await services.edits.authenticate_callback(provider, edit_id, token)
            services.metrics.callbacks.labels(provider=provider, result="malformed").inc()
            raise BadRequest("body is not JSON") from None
        outcome = await services.edits.handle_callback(provider, edit_id, token, body, headers)
    except CallbackRejected as exc:
        result = UNAUTHENTICATED.get(exc.reason) or REFUSALS.get(exc.status or 403, "refused")
        services.metrics.callbacks.labels(provider=provider, result=result).inc()
        raise
    result = "applied" if outcome.changed else "duplicate"
    services.metrics.callbacks.labels(provider=provider, result=result).inc()
    return web.json_response({"ok": True, "state": outcome.state.value})


def setup(app: web.Application) -> None:
    app.router.add_post(r"/callbacks/{provider:[a-z0-9_-]{1,32}}/{edit_id}", provider_callback)
