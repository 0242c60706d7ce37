"""Typed aiohttp application keys: the settings and every resource the app opens."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from telegram.ext import Application

from bot.config import Settings
from bot.i18n import Translator
from bot.intake import UpdateIntake
from bot.metrics import Metrics
from bot.providers.registry import ProviderRegistry
from bot.providers.transport import Transport
from bot.services import Services
from bot.tasks import TaskTracker
from storage.blobs import BlobStore
from storage.db import Database

SETTINGS = web.AppKey("settings", Settings)
TRANSLATOR = web.AppKey("translator", Translator)
METRICS = web.AppKey("metrics", Metrics)
DATABASE = web.AppKey("database", Database)
HTTP = web.AppKey("http", aiohttp.ClientSession)
RESULT_HTTP = web.AppKey("result_http", aiohttp.ClientSession)
TRANSPORT = web.AppKey("transport", Transport)
REGISTRY = web.AppKey("registry", ProviderRegistry)
BLOBS = web.AppKey("blobs", BlobStore)
PTB = web.AppKey("ptb", Application)
TRACKER = web.AppKey("tracker", TaskTracker)
SERVICES = web.AppKey("services", Services)
INTAKE = web.AppKey("intake", UpdateIntake)
