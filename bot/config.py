"""Service settings, read from the environment and `.env` (pydantic-settings)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.providers.catalog import Catalog, CatalogError, load_catalog
from bot.setting_values import (
    PLACEHOLDER_RE,
    TELEGRAM_API_HOST,
    TELEGRAM_WEBHOOK_PORTS,
    TOKEN_RE,
    ConfigError,
    ModelCosts,
    ProviderNames,
    RateLimit,
    RateLimitSetting,
    StarPacks,
    StorageKind,
    split_ids,
)

__all__ = ["ConfigError", "RateLimit", "Settings", "load_settings"]


class Settings(BaseSettings):
    """Every setting of the service; `.env.example` documents each one."""

    # env_ignore_empty: `NAME=` (as in .env.example) means "not set", i.e. the default.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # Telegram
    bot_token: SecretStr = Field(validation_alias="BOT_TOKEN")
    telegram_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://api.telegram.org"), validation_alias="TELEGRAM_API_URL"
    )
    public_base_url: AnyHttpUrl | None = Field(default=None, validation_alias="PUBLIC_BASE_URL")
    webhook_secret: SecretStr | None = Field(default=None, validation_alias="WEBHOOK_SECRET")
    telegram_max_rate: int = Field(default=30, ge=1, validation_alias="TELEGRAM_MAX_RATE")
    telegram_chat_rate: RateLimitSetting = Field(
        default=RateLimit(1, 1.0), validation_alias="TELEGRAM_CHAT_RATE"
    )
    telegram_group_rate: RateLimitSetting = Field(
        default=RateLimit(20, 60.0), validation_alias="TELEGRAM_GROUP_RATE"
    )
    telegram_poll_timeout: int = Field(
        default=30, ge=0, le=50, validation_alias="TELEGRAM_POLL_TIMEOUT"
    )
    admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias="ADMIN_IDS"
    )

    # Access and moderation
    allowed_user_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias="ALLOWED_USER_IDS"
    )
    allowed_chat_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias="ALLOWED_CHAT_IDS"
    )
    approval_timeout: float = Field(default=3600.0, gt=0, validation_alias="APPROVAL_TIMEOUT")

    # Operators' runtime control (README: "Operating users at runtime")
    as_file_result_limit: RateLimitSetting = Field(
        default=RateLimit(1, 300.0), validation_alias="AS_FILE_RESULT_LIMIT"
    )
    as_file_user_limit: RateLimitSetting = Field(
        default=RateLimit(20, 3600.0), validation_alias="AS_FILE_USER_LIMIT"
    )
    low_credits_alert: float | None = Field(
        default=None, ge=0, validation_alias="LOW_CREDITS_ALERT"
    )
    credits_check_interval: float = Field(
        default=900.0, gt=0, validation_alias="CREDITS_CHECK_INTERVAL"
    )
    # Spending limits (bot/limits.py): per user in every chat, and the bot-wide cap
    user_max_in_flight: int = Field(default=2, ge=0, validation_alias="USER_MAX_IN_FLIGHT")
    user_daily_edits: int = Field(default=30, ge=0, validation_alias="USER_DAILY_EDITS")
    user_daily_credits: float | None = Field(
        default=None, gt=0, validation_alias="USER_DAILY_CREDITS"
    )
    spend_cap_daily: float | None = Field(default=None, gt=0, validation_alias="SPEND_CAP_DAILY")
    spend_cap_monthly: float | None = Field(
        default=None, gt=0, validation_alias="SPEND_CAP_MONTHLY"
    )
    spend_cap_exempt_admins: bool = Field(default=False, validation_alias="SPEND_CAP_EXEMPT_ADMINS")
    model_costs: ModelCosts = Field(default_factory=dict, validation_alias="MODEL_COSTS")

    # Providers
    kie_api_key: SecretStr | None = Field(default=None, validation_alias="KIE_API_KEY")
    kie_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://api.kie.ai"), validation_alias="KIE_API_URL"
    )
    kie_upload_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://kieai.redpandaai.co"), validation_alias="KIE_UPLOAD_URL"
    )
    kie_webhook_hmac_key: SecretStr | None = Field(
        default=None, validation_alias="KIE_WEBHOOK_HMAC_KEY"
    )
    kie_playground: bool = Field(default=False, validation_alias="KIE_PLAYGROUND")
    kie_4o: bool = Field(default=True, validation_alias="KIE_4O")
    kie_rate_limit: RateLimitSetting = Field(
        default=RateLimit(20, 10.0), validation_alias="KIE_RATE_LIMIT"
    )
    apikley_api_key: SecretStr | None = Field(default=None, validation_alias="APIKLEY_API_KEY")
    apikley_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://api.apikley.ru"), validation_alias="APIKLEY_API_URL"
    )
    apikley_rate_limit: RateLimitSetting = Field(
        default=RateLimit(20, 10.0), validation_alias="APIKLEY_RATE_LIMIT"
    )
    odkkk_api_key: SecretStr | None = Field(default=None, validation_alias="ODKKK_API_KEY")
    odkkk_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://ai.odkkk.com/apiv1"), validation_alias="ODKKK_API_URL"
    )
    odkkk_task_path: str = Field(default="/v1/tasks/{id}", validation_alias="ODKKK_TASK_PATH")
    odkkk_rate_limit: RateLimitSetting = Field(
        default=RateLimit(20, 10.0), validation_alias="ODKKK_RATE_LIMIT"
    )
    default_model: str = Field(default="qwen/image-edit", validation_alias="DEFAULT_MODEL")
    # Provider names in the operator's order: an edit refused by one (README, "Failover")
    # goes to the next that offers the same model. Empty: no failover.
    failover: ProviderNames = Field(default=[], validation_alias="FAILOVER")
    # The model /imagine draws with unless a chat chose one ("": see bot.preferences).
    default_generator: str = Field(default="", validation_alias="DEFAULT_GENERATOR")
    # An operator's model catalog added to the shipped one (README: "Model catalog").
    model_catalog_file: Path | None = Field(default=None, validation_alias="MODEL_CATALOG_FILE")
    provider_timeout: float = Field(default=30.0, gt=0, validation_alias="PROVIDER_TIMEOUT")
    provider_max_retries: int = Field(
        default=4, ge=0, le=10, validation_alias="PROVIDER_MAX_RETRIES"
    )
    provider_backoff_base: float = Field(
        default=1.0, gt=0, validation_alias="PROVIDER_BACKOFF_BASE"
    )

    # Storage
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL", validation_alias="SQLITE_SYNCHRONOUS"
    )
    data_dir: Path = Field(default=Path("./data"), validation_alias="DATA_DIR")
    storage: StorageKind | None = Field(default=None, validation_alias="STORAGE")
    file_url_ttl: int = Field(default=3600, ge=60, validation_alias="FILE_URL_TTL")
    signing_key: SecretStr | None = Field(default=None, validation_alias="SIGNING_KEY")
    s3_bucket: str | None = Field(default=None, min_length=3, validation_alias="S3_BUCKET")
    s3_endpoint_url: AnyHttpUrl | None = Field(default=None, validation_alias="S3_ENDPOINT_URL")
    s3_region: str = Field(default="us-east-1", min_length=1, validation_alias="S3_REGION")
    s3_access_key_id: str | None = Field(default=None, validation_alias="S3_ACCESS_KEY_ID")
    s3_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias="S3_SECRET_ACCESS_KEY"
    )
    s3_prefix: str = Field(default="", validation_alias="S3_PREFIX")
    s3_public_base_url: AnyHttpUrl | None = Field(
        default=None, validation_alias="S3_PUBLIC_BASE_URL"
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", validation_alias="S3_ADDRESSING_STYLE"
    )
    blob_grace: float = Field(default=600.0, ge=0, validation_alias="BLOB_GRACE")
    blob_max_age: float = Field(default=24 * 3600.0, gt=0, validation_alias="BLOB_MAX_AGE")
    blob_cleanup_interval: float = Field(
        default=60.0, gt=0, validation_alias="BLOB_CLEANUP_INTERVAL"
    )

    # Web server
    host: str = Field(default="0.0.0.0", validation_alias="HOST")
    port: int = Field(default=8080, ge=1, le=65535, validation_alias="PORT")
    # A request's headers, and then its body, must arrive within this many seconds; an idle
    # kept-alive connection is closed after it too.
    http_read_timeout: float = Field(default=60.0, gt=0, validation_alias="HTTP_READ_TIMEOUT")
    http_max_connections: int = Field(default=1000, ge=1, validation_alias="HTTP_MAX_CONNECTIONS")
    metrics_token: SecretStr | None = Field(default=None, validation_alias="METRICS_TOKEN")
    metrics_port: int | None = Field(default=None, ge=1, le=65535, validation_alias="METRICS_PORT")
    metrics_refresh_interval: float = Field(
        default=15.0, gt=0, validation_alias="METRICS_REFRESH_INTERVAL"
    )
    webhook_check_ttl: float = Field(default=60.0, ge=0, validation_alias="WEBHOOK_CHECK_TTL")

    # Task lifecycle
    poll_interval: float = Field(default=3.0, gt=0, validation_alias="POLL_INTERVAL")
    poll_max_interval: float = Field(default=30.0, gt=0, validation_alias="POLL_MAX_INTERVAL")
    poll_min_interval: float = Field(default=0.5, gt=0, validation_alias="POLL_MIN_INTERVAL")
    status_edit_interval: float = Field(default=5.0, ge=0, validation_alias="STATUS_EDIT_INTERVAL")
    status_edit_interval_group: float = Field(
        default=20.0, ge=0, validation_alias="STATUS_EDIT_INTERVAL_GROUP"
    )
    callback_grace: float = Field(default=120.0, gt=0, validation_alias="CALLBACK_GRACE")
    task_timeout: float = Field(default=900.0, gt=0, validation_alias="TASK_TIMEOUT")
    sweep_interval: float = Field(default=2.0, gt=0, validation_alias="SWEEP_INTERVAL")
    # Leases: how long another worker waits before taking over the work of a process that
    # died; work still alive renews its lease every LEASE_RENEW_INTERVAL.
    submit_lease: float = Field(default=300.0, gt=0, validation_alias="SUBMIT_LEASE")
    delivery_lease: float = Field(default=180.0, gt=0, validation_alias="DELIVERY_LEASE")
    notify_lease: float = Field(default=60.0, gt=0, validation_alias="NOTIFY_LEASE")
    poll_lease: float = Field(default=60.0, gt=0, validation_alias="POLL_LEASE")
    lease_renew_interval: float = Field(default=15.0, gt=0, validation_alias="LEASE_RENEW_INTERVAL")
    update_lease: float = Field(default=60.0, gt=0, validation_alias="UPDATE_LEASE")
    max_result_bytes: int = Field(
        default=30 * 1024 * 1024, gt=0, validation_alias="MAX_RESULT_BYTES"
    )
    # Input photos being normalized at once take at most this much memory between them
    # (estimated from each header); one image larger than the whole budget runs alone.
    normalize_memory_budget_mb: int = Field(
        default=600, ge=64, le=65536, validation_alias="NORMALIZE_MEMORY_BUDGET_MB"
    )
    # Result URLs come from providers (and their redirects): by default only public addresses
    # are fetched; self-hosted setups whose results live on a private network opt in.
    result_allow_private: bool = Field(default=False, validation_alias="RESULT_ALLOW_PRIVATE")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    # How long start-up keeps retrying while Telegram or the database does not answer.
    startup_retry_timeout: float = Field(
        default=120.0, ge=0, validation_alias="STARTUP_RETRY_TIMEOUT"
    )

    # Paid edits with Telegram Stars (README: "Paid edits"); no packs: payments are off.
    stars_packs: StarPacks = Field(default=[], validation_alias="STARS_PACKS")
    free_edits_daily: int = Field(default=3, ge=0, validation_alias="FREE_EDITS_DAILY")
    paysupport_text: str = Field(default="", max_length=4000, validation_alias="PAYSUPPORT_TEXT")
    terms_text: str = Field(default="", max_length=4000, validation_alias="TERMS_TEXT")

    _catalog: Catalog = PrivateAttr()

    @field_validator("bot_token")
    @classmethod
    def _token_format(cls, value: SecretStr) -> SecretStr:
        if not TOKEN_RE.match(value.get_secret_value().strip()):
            raise ValueError(
                "BOT_TOKEN is malformed: expected '<digits>:<35-ish characters>' as given by "
                "@BotFather"
            )
        return SecretStr(value.get_secret_value().strip())

    @model_validator(mode="before")
    @classmethod
    def _no_placeholders(cls, values: object) -> object:
        if not isinstance(values, dict):
            return values
        ours = {
            str(field.validation_alias).lower()
            for field in cls.model_fields.values()
            if isinstance(field.validation_alias, str)
        }
        unedited = sorted(
            name.upper()
            for name, value in values.items()
            if isinstance(name, str)
            and name.lower() in ours
            and isinstance(value, str)
            and PLACEHOLDER_RE.search(value)
        )
        if unedited:
            raise ValueError(
                f"{', '.join(unedited)}: still the placeholder from .env.example, replace me "
                "with your own value (README, Configuration)"
            )
        return values

    @field_validator("admin_ids", "allowed_user_ids", "allowed_chat_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        return split_ids(value)

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("odkkk_task_path")
    @classmethod
    def _task_path(cls, value: str) -> str:
        if not value.startswith("/") or value.count("{id}") != 1:
            raise ValueError("must start with '/' and contain '{id}' once, e.g. /v1/tasks/{id}")
        return value

    @model_validator(mode="after")
    def _combinations(self) -> Settings:
        if self.storage == "local" and self.public_base_url is None:
            raise ValueError(
                "STORAGE=local needs PUBLIC_BASE_URL: providers must be able to download "
                "the photo from this service"
            )
        if self.resolved_storage == "kie" and self.kie_api_key is None:
            raise ValueError("STORAGE=kie (the default without PUBLIC_BASE_URL) needs KIE_API_KEY")
        if self.resolved_storage == "s3":
            self._check_s3()
        self._check_webhook_url()
        shortest_lease = min(
            self.submit_lease, self.delivery_lease, self.notify_lease, self.poll_lease
        )
        if self.lease_renew_interval * 2 > shortest_lease:
            raise ValueError(
                "LEASE_RENEW_INTERVAL must be at most half of the shortest lease "
                "(SUBMIT_LEASE, DELIVERY_LEASE, NOTIFY_LEASE, POLL_LEASE): a lease must be "
                "renewed well before it runs out"
            )
        if not self.poll_min_interval <= self.poll_interval <= self.poll_max_interval:
            raise ValueError("need POLL_MIN_INTERVAL <= POLL_INTERVAL <= POLL_MAX_INTERVAL")
        if self.metrics_port == self.port:
            raise ValueError("METRICS_PORT must differ from PORT (or be unset)")
        try:  # the models are configuration: a broken catalog stops the start (exit 2)
            self._catalog = load_catalog(self.model_catalog_file)
        except CatalogError as exc:
            raise ValueError(f"MODEL_CATALOG_FILE: {exc}") from None
        if self.blob_max_age < self.task_timeout + self.blob_grace:
            raise ValueError(
                "BLOB_MAX_AGE must be at least TASK_TIMEOUT + BLOB_GRACE: the orphan sweep "
                "would delete photos of edits still running"
            )
        return self

    def _check_webhook_url(self) -> None:
        url = self.public_base_url
        if url is None or self.telegram_api_url.host != TELEGRAM_API_HOST:
            return
        if url.scheme != "https" or url.port not in TELEGRAM_WEBHOOK_PORTS:
            raise ValueError(
                f"PUBLIC_BASE_URL must be an https:// URL on port 443, 80, 88 or 8443: "
                f"Telegram's Bot API refuses to send webhooks to {url.scheme}://...:{url.port} "
                "(put a TLS proxy in front and give its https address, or leave "
                "PUBLIC_BASE_URL unset for long polling; plain http works only with a "
                "self-hosted Bot API server started with --local, set in TELEGRAM_API_URL)"
            )

    def _check_s3(self) -> None:
        if not self.s3_bucket:
            raise ValueError("STORAGE=s3 needs S3_BUCKET")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError(
                "set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither (then the "
                "AWS default credential chain is used: AWS_* variables, profile, IAM role)"
            )
        if self.s3_public_base_url is None and self.file_url_ttl > 7 * 24 * 3600:
            raise ValueError(
                "FILE_URL_TTL can be at most 604800 (7 days) with STORAGE=s3: presigned "
                "URLs live no longer (or set S3_PUBLIC_BASE_URL for a public bucket)"
            )

    # Derived values -------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """The models this deployment can offer (the shipped catalog and MODEL_CATALOG_FILE)."""
        return self._catalog

    @property
    def payments(self) -> bool:
        """Edits are paid for (STARS_PACKS set): reservations, /buy, /balance."""
        return bool(self.stars_packs)

    @property
    def webhook_mode(self) -> bool:
        return self.public_base_url is not None

    @property
    def resolved_storage(self) -> StorageKind:
        if self.storage is not None:
            return self.storage
        return "local" if self.public_base_url is not None else "kie"

    @property
    def base_url(self) -> str | None:
        return str(self.public_base_url).rstrip("/") if self.public_base_url else None

    @property
    def telegram_base(self) -> str:
        return str(self.telegram_api_url).rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        """A SQLAlchemy URL: SQLite (stdlib driver, see storage.dbconn) by default,
        postgresql+asyncpg by URL."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'bot.sqlite3').resolve()}"
        for prefix, driver in (
            ("sqlite+aiosqlite://", "sqlite://"),  # older configurations: the same file
            ("postgres://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
        ):
            if url.startswith(prefix):
                return driver + url[len(prefix) :]
        return url

    def _derived_secret(self, purpose: str) -> str:
        token = self.bot_token.get_secret_value().encode()
        return hmac.new(token, purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def resolved_webhook_secret(self) -> str:
        """Telegram's secret_token: 1-256 of A-Z a-z 0-9 _ -; derived from the token if unset."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        return self._derived_secret("telegram-webhook")

    @property
    def resolved_signing_key(self) -> bytes:
        """Key for signed file URLs; stable across restarts and replicas."""
        if self.signing_key is not None:
            return self.signing_key.get_secret_value().encode()
        return self._derived_secret("file-urls").encode()


def load_settings(**overrides: object) -> Settings:
    """Load settings, turning validation errors into one readable ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"]) or "settings"
            name = loc.upper() if loc != "settings" else "settings"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is required but not set"
            lines.append(msg if name == "settings" else f"{name}: {msg}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
