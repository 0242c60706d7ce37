"""Typed provider errors: every family's HTTP statuses and body codes map onto these once."""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed. `code` is a stable machine name used for messages and metrics."""

    code = "provider_error"
    retryable = False

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        self.status = status
        self.param = param
        self.retry_after = retry_after


class ProviderAuthError(ProviderError):
    """401/403: the key is wrong or lacks access; the operator must fix the configuration."""

    code = "provider_auth"


class InsufficientCredits(ProviderError):
    """402: the provider account is out of credits."""

    code = "insufficient_credits"


class ValidationRejected(ProviderError):
    """400/422: the provider refused a parameter (named in `param` when known)."""

    code = "validation"


class ProviderNotFound(ProviderError):
    """404: unknown model, task or endpoint."""

    code = "not_found"


class RateLimited(ProviderError):
    """429/433: too many requests; retried with backoff."""

    code = "rate_limited"
    retryable = True


class ProviderUnavailable(ProviderError):
    """455 maintenance, 5xx, timeouts and connection failures; retried with backoff."""

    code = "unavailable"
    retryable = True


class FeatureDisabled(ProviderError):
    """505: the provider disabled this feature."""

    code = "feature_disabled"


class GenerationFailed(ProviderError):
    """501 or a failed task: the model could not produce a result."""

    code = "generation_failed"


class SubmitUncertain(ProviderError):
    """A create request timed out after it was sent: the task may or may not exist.

    Never retried automatically (that could pay twice); the user is told and may retry.
    """

    code = "submit_uncertain"


class ProtocolError(ProviderError):
    """The provider answered something the documents do not describe."""

    code = "protocol"


class CallbackRejected(ProviderError):
    """A callback failed authentication or validation (answered with a 4xx)."""

    code = "callback_rejected"

    def __init__(self, detail: str, *, status: int = 403, reason: str | None = None) -> None:
        super().__init__(detail, status=status)
        # What operators see (logs, metrics) when the answer must not tell it.
        self.reason = reason or detail


def unknown_edit(reason: str) -> CallbackRejected:
    """The one answer for a callback that is not authenticated: an edit id that does not
    exist, belongs to another provider, or a wrong token all read alike to the caller."""
    return CallbackRejected("unknown edit", status=404, reason=reason)


def error_for_code(code: int, detail: str = "", *, param: str | None = None) -> ProviderError:
    """Map a KIE-style code (HTTP status or body `code`) onto a typed error."""
    mapping: dict[int, type[ProviderError]] = {
        400: ValidationRejected,
        401: ProviderAuthError,
        402: InsufficientCredits,
        403: ProviderAuthError,
        404: ProviderNotFound,
        413: ValidationRejected,
        422: ValidationRejected,
        429: RateLimited,
        433: RateLimited,
        455: ProviderUnavailable,
        501: GenerationFailed,
        505: FeatureDisabled,
    }
    cls = mapping.get(code)
    if cls is None:
        cls = ProviderUnavailable if code >= 500 or code == 408 else ProtocolError
    return cls(detail, status=code, param=param)
