"""Which providers and models this deployment offers (enabled by setting their keys)."""

from __future__ import annotations

from collections.abc import Iterable

from bot.providers.base import ModelSpec, Provider


class UnknownModel(LookupError):
    """A model id that no enabled provider offers."""


class ProviderRegistry:
    """Enabled providers by name and their models by id, in a stable order."""

    def __init__(self, providers: Iterable[Provider]) -> None:
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

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()
