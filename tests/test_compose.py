"""compose.yaml brings up what the README's scale-out section describes, with real settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _setting_names() -> set[str]:
    return {
        str(field.validation_alias)
        for field in Settings.model_fields.values()
        if field.validation_alias is not None
    }


def _bots(services: dict[str, Any]) -> dict[str, Any]:
    return {name: spec for name, spec in services.items() if spec.get("build") == "."}


def test_two_replicas_with_postgres_s3_and_a_tls_proxy() -> None:
    services = _compose()["services"]
    bots = _bots(services)
    assert len(bots) == 2
    images = {name: str(spec.get("image", "")) for name, spec in services.items()}
    assert images["postgres"].startswith("postgres:")
    assert images["minio"].startswith("minio/minio")
    assert images["caddy"].startswith("caddy:")
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    for name in bots:
        assert f"{name}:8080" in caddyfile
    for spec in bots.values():
        environment = spec["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in environment["DATABASE_URL"]
        assert environment["STORAGE"] == "s3"
        assert environment["PUBLIC_BASE_URL"].startswith("https://")
        assert spec["restart"] == "unless-stopped"
        assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_setting_passed_to_the_bot_exists() -> None:
    known = _setting_names()
    for name, spec in _bots(_compose()["services"]).items():
        unknown = set(spec["environment"]) - known
        assert not unknown, f"{name} passes settings bot/config.py does not have: {unknown}"


def test_every_long_running_service_has_a_health_check_and_data_is_on_volumes() -> None:
    compose = _compose()
    for name, spec in compose["services"].items():
        if spec.get("restart") == "no":  # the one-shot bucket creation
            continue
        assert "healthcheck" in spec, f"{name} has no health check"
        assert spec["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    declared = set(compose["volumes"])
    for name in ("postgres", "minio", "caddy"):
        for mount in compose["services"][name]["volumes"]:
            source = mount.split(":", 1)[0]
            assert source.startswith("./") or source in declared, (name, mount)


def test_every_variable_the_stack_needs_is_documented_in_env_example() -> None:
    text = (ROOT / "compose.yaml").read_text()
    needed = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = (ROOT / ".env.example").read_text()
    for variable in needed:
        assert re.search(rf"^#?\s*{variable}=", example, flags=re.M), variable
