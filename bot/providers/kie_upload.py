"""KIE's file upload API as a blob store: input photos uploaded for KIE to fetch."""

from __future__ import annotations

import aiohttp

from bot.providers.kie import kie_error
from bot.providers.transport import Transport
from domain.errors import ProtocolError
from storage.blobs import CONTENT_TYPES, StoredBlob, new_key


class KieUploadStore:
    """KIE's free file upload API; files expire on KIE's side (assume 24 hours)."""

    name = "kie"
    upload_path = "telegram-edits"

    def __init__(self, transport: Transport, upload_url: str, api_key: str) -> None:
        self.transport = transport
        self.upload_url = upload_url.rstrip("/")
        self.api_key = api_key

    async def start(self) -> None:
        return None

    async def put(self, data: bytes, *, extension: str) -> StoredBlob:
        key = new_key(extension)

        def form() -> aiohttp.FormData:
            fields = aiohttp.FormData()
            fields.add_field("file", data, filename=key, content_type=CONTENT_TYPES[extension])
            fields.add_field("uploadPath", self.upload_path)
            fields.add_field("fileName", key)
            return fields

        body = await self.transport.request(
            "POST",
            f"{self.upload_url}/api/file-stream-upload",
            family="kie-upload",
            error_mapper=kie_error,
            headers={"Authorization": f"Bearer {self.api_key}"},
            form=form,
        )
        data_obj = body.get("data") if isinstance(body, dict) else None
        url = data_obj.get("downloadUrl") if isinstance(data_obj, dict) else None
        if not url or body.get("success") is False:
            raise ProtocolError("upload answer has no downloadUrl")
        return StoredBlob(key=key, url=str(url))

    async def delete(self, key: str) -> None:
        # KIE offers no delete call; uploads expire on their side.
        return None

    async def sweep(self, older_than: float) -> int:
        return 0

    async def close(self) -> None:
        return None
