"""Which providers and models this deployment offers (enabled by setting their keys)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.providers.base import ModelSpec, Provider


class UnknownModel(LookupError):
    """A model id that no enabled provider offers."""


class ProviderRegistry:
    """Enabled providers by name and their models by id, in a stable order."""

    def __init__(self, providers: Iterable[Provider], *, failover: Sequence[str] = ()) -> None:
        self.failover = tuple(failover)
        self.providers: dict[str, Provider] = {}
        self.models: dict[str, ModelSpec] = {}
        for provider in providers:
            self.providers[provider.name] = provider
            self.models.update(provider.models)

    def model(self, model_id: str) -> ModelSpec:
        try:
            return self.models[model_id]
        except KeyError:
            raise UnknownModel(model_id) from None

    def provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise UnknownModel(name) from None

    def provider_for(self, model_id: str) -> Provider:
        return self.provider(self.model(model_id).provider)

    def failover_target(self, model_id: str, tried: Iterable[str]) -> ModelSpec | None:
        """Where an edit of `model_id` goes when its provider refused it: the same catalog
        entry on the next provider of the operator's FAILOVER order not yet `tried`. Only
        providers named there take part, the refusing one included."""
        spec = self.model(model_id)
        if spec.provider not in self.failover:
            return None
        same = {m.provider: m for m in self.models.values() if m.entry == spec.entry}
        skip = {spec.provider, *tried}
        for name in self.failover:
            if name in same and name not in skip:
                return same[name]
        return None

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()
