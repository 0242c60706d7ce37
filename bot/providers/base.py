"""What every provider family offers the edit service, and the shared value types."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal, Protocol

from bot.images.limits import ImageLimits
from domain.errors import ProtocolError, ProviderError


class TaskState(StrEnum):
    """One lifecycle for every provider's task states."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED)


@dataclass(frozen=True)
class TaskStatus:
    """A provider's view of a task, from a status query or a callback."""

    state: TaskState
    task_id: str | None = None
    result_urls: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    progress: float | None = None  # fraction done, 0.0-1.0, when the provider says
    eta: float | None = None  # seconds until done, when the provider estimates it
    credits_used: float | None = None
    credits_left: float | None = None


# Result URLs kept per edit, whatever a provider returns (see `requested_results`).
MAX_RESULTS = 10


def requested_results(params: Mapping[str, Any]) -> int:
    """How many results an edit asked for (`num_images`, 1 unless set), at most MAX_RESULTS."""
    try:
        count = int(params.get("num_images") or 1)
    except (TypeError, ValueError):
        count = 1
    return max(1, min(count, MAX_RESULTS))


OptionKind = Literal["choice", "text", "seed"]
# What leaving an option unset means to the user (the settings menu words it).
Unset = Literal["default", "auto", "none", "random", "off"]
ParamType = Literal["string", "integer", "number", "boolean"]
Capability = Literal["edit", "text"]


@dataclass(frozen=True)
class ModelOption:
    """A parameter of a model that a chat may set: how the settings menu offers it.

    `choices` are the values offered, in order; None among them means "not sent" (the API's
    default, or for sizes one chosen from the photo's shape: `unset="auto"`). `default` is
    what applies when nothing is stored; choosing it stores nothing. `code` names the option
    in callback data (64 bytes), so it is short and means the same option on every model.
    `value_names` is the group of translated names for the values, when raw values read
    badly. `max_length` bounds a text option. `texts` holds the option's own menu words
    ("label", "help", "ask" by language) for options the message catalogs do not know.
    """

    name: str
    code: str
    kind: OptionKind = "choice"
    choices: tuple[Any, ...] = ()
    default: Any = None
    unset: Unset = "default"
    value_names: str | None = None
    max_length: int = 0
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)


def option_table(*options: ModelOption) -> Mapping[str, ModelOption]:
    """A model's options by name, in the order the settings menu lists them."""
    return MappingProxyType({option.name: option for option in options})


@dataclass(frozen=True)
class Param:
    """One documented input of a model's API: the values it takes and where it is sent.

    `path` is its dotted place in the request body ("input.seed"). `values`, `low`/`high`
    and `max_length` are the documented limits. When the chat leaves it unset: a value of
    `auto` closest to the photo's shape (`ratios` gives the shape of named values), else
    `when_unset`, else nothing. `also_send` are fields sent with it whenever it is sent;
    `credits` the price per image of the values that cost more than the model's own.
    """

    name: str
    path: str
    type: ParamType = "string"
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    max_length: int = 0
    send_as_string: bool = False
    auto: tuple[str, ...] = ()
    ratios: Mapping[str, float] = field(default_factory=dict, hash=False)
    when_unset: Any = None
    also_send: Mapping[str, Any] = field(default_factory=dict, hash=False)
    credits: Mapping[str, float] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class WireFields:
    """Where a model's request carries the model name, the prompt, the photos and a mask
    (dotted paths; None: not sent). `images_list`: the photos as a list, else one URL."""

    model: str | None = "model"
    prompt: str = "prompt"
    images: str = "image_urls"
    images_list: bool = True
    mask: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model a chat can choose on one provider, as its catalog entry describes it."""

    id: str
    provider: str
    api_model: str
    title: str
    capabilities: frozenset[Capability] = frozenset({"edit"})
    max_images: int = 1
    prompt_max: int = 2000
    image_limits: ImageLimits = field(default_factory=ImageLimits)
    # What a chat may set; other parameters of the API are not the chat's to choose.
    options: Mapping[str, ModelOption] = field(default_factory=option_table, hash=False)
    # Every documented parameter (the options included): limits and place in the request.
    params: Mapping[str, Param] = field(default_factory=dict, hash=False)
    wire: WireFields = field(default_factory=WireFields)
    # Credits one result image costs (None: not priced, see bot/costs.py).
    credits: float | None = None
    # The catalog entry this is (the same on every provider of that entry): failover moves an
    # edit only between specs of one entry, which take the same photos and options.
    entry: str = ""

    @property
    def supports_mask(self) -> bool:
        return self.wire.mask is not None

    @property
    def edits(self) -> bool:
        return "edit" in self.capabilities

    @property
    def generates(self) -> bool:
        """Makes an image from the prompt alone (/imagine)."""
        return "text" in self.capabilities


@dataclass(frozen=True)
class SubmitRequest:
    """Everything a provider needs to start an edit."""

    model: ModelSpec
    prompt: str
    image_urls: tuple[str, ...]
    image_sizes: tuple[tuple[int, int], ...] = ()
    mask_url: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    callback_url: str | None = None


@dataclass(frozen=True)
class AccountLimit:
    """A provider account's limit on new tasks: at most `max_calls` per `period` seconds.

    Families sharing an `account` (the KIE APIs) share its limit. It is enforced in the
    database (storage.turns), so it holds for all replicas together. `request_timeout`: how
    long a create request may be under way, all of which its turn counts as "now" (the
    provider sees it arrive at some moment in between).
    """

    account: str
    max_calls: int
    period: float
    request_timeout: float = 30.0


class Provider(Protocol):
    """One provider API family. Mapping is pure; I/O goes through the shared transport."""

    name: str
    models: Mapping[str, ModelSpec]
    # The account's limit on new tasks (None: unlimited); submission takes turns under it.
    rate_limit: AccountLimit | None

    def accepts_callback_url(self, url: str) -> bool:
        """Whether this family can call `url` back (some require HTTPS)."""

    def validate(self, request: SubmitRequest) -> None:
        """Raise InputRejected before anything is spent when a documented limit is broken."""

    async def submit(self, request: SubmitRequest) -> str:
        """Send the create request once (no waiting, no retry); return the task id.

        A refusal that proves no task exists raises a `retryable` ProviderError; a request
        that may have reached the provider unanswered raises SubmitUncertain.
        """

    def retry_delay(self, attempt: int, error: ProviderError) -> float | None:
        """How long to wait before creating the task again after `error` refused retry
        number `attempt + 1`; None to give up (or for an error not worth retrying)."""

    async def status(self, task_id: str) -> TaskStatus:
        """Ask the provider how the task is doing."""

    def parse_callback(
        self, body: Any, headers: Mapping[str, str], *, task_id: str | None = None
    ) -> TaskStatus:
        """Validate and parse a callback body (raises CallbackRejected).

        `task_id` is the task the edit was submitted as, when known: callbacks that do not
        name their task (KIE 4o failures carry `data: null`) are authenticated against it.
        """

    async def fallback_download_url(self, url: str) -> str | None:
        """Another URL for a result that could not be fetched directly, if the API has one."""

    async def close(self) -> None:
        """Release resources."""


class InputRejected(ValueError):
    """A documented limit is broken; `code` and `params` feed the user's message."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def check_prompt_and_images(request: SubmitRequest) -> None:
    """The limits every family documents: a non-blank prompt and 1..max images, per model;
    no image for a model that generates from text, and none for one that only does that."""
    model = request.model
    prompt = request.prompt
    if not prompt.strip():
        raise InputRejected("prompt_empty")
    if len(prompt) > model.prompt_max:
        raise InputRejected("prompt_too_long", limit=model.prompt_max, length=len(prompt))
    count = len(request.image_urls)
    if count < 1 and not model.generates:
        raise InputRejected("no_image")
    if count and not model.edits:
        raise InputRejected("text_only", model=model.title)
    if count > model.max_images:
        raise InputRejected("too_many_images", limit=model.max_images, count=count)


def embedded_json(text: str, what: str) -> Any:
    """A JSON document carried as a string inside an answer (KIE's `resultJson`).

    ProtocolError for anything that is not JSON, nesting too deep included: the answer may
    come from anyone who can reach the callback URL, so no input may escape as a 500.
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what} is not JSON") from exc
