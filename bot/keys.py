"""Typed aiohttp application keys."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from telegram.ext import Application

from bot.config import Settings
from bot.services import Services
from storage.db import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SERVICES = web.AppKey("services", Services)
PTB = web.AppKey("ptb", Application)
