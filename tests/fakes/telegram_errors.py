"""How the fake Telegram refuses a request.

`ApiError` is an answer the real Bot API would give (400 Bad Request, 403, 409...).
`NotModelled` is the fake's own limit: the request is valid for Telegram but uses a method,
parameter or markup the bot never sends, so the fake does not imitate it. It answers 500 and
lands in `FakeTelegram.server_errors`, so a bot change that starts using it fails loudly
instead of being waved through.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> Json:
        body: Json = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class NotModelled(NotImplementedError):
    def __init__(self, what: str) -> None:
        super().__init__(f"the fake Telegram does not model {what}")


def bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")
