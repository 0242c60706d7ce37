"""Files in the fake Telegram: registered bytes, photo sizes, and file parameters of requests.

A photo is checked like the real server does (decodable, sane dimensions) and stored as 2-3
``PhotoSize`` entries: real downscaled JPEG thumbnails, the uploaded bytes last.
"""

from __future__ import annotations

import io
import itertools
import mimetypes
from dataclasses import dataclass, field
from typing import Any, Final

from PIL import Image, UnidentifiedImageError

from tests.fakes.telegram_errors import Json, NotModelled, bad

MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024
MAX_DOWNLOAD_BYTES: Final = 20 * 1024 * 1024
_MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024
_IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})


@dataclass(frozen=True)
class FileInfo:
    """A file registered in the fake (uploaded by the bot, sent by a user or added by a test)."""

    file_id: str
    file_unique_id: str
    file_path: str
    file_size: int
    data: bytes = field(repr=False)
    kind: str = "document"
    """``photo`` or ``document``."""
    width: int | None = None
    height: int | None = None
    mime_type: str | None = None
    file_name: str | None = None

    def file_json(self) -> Json:
        """The ``File`` object getFile answers."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": self.file_path,
        }

    def photo_size_json(self) -> Json:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "width": self.width or 0,
            "height": self.height or 0,
        }

    def document_json(self) -> Json:
        doc: Json = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.file_name is not None:
            doc["file_name"] = self.file_name
        if self.mime_type is not None:
            doc["mime_type"] = self.mime_type
        doc["file_size"] = self.file_size
        return doc


@dataclass
class Upload:
    """A file part of a multipart request."""

    data: bytes
    filename: str | None
    content_type: str | None


def _image_size(data: bytes) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError as exc:
        raise bad("PHOTO_INVALID_DIMENSIONS") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise bad("IMAGE_PROCESS_FAILED") from exc


class FileStore:
    """The registered files by id and by download path."""

    def __init__(self, bot_id: int) -> None:
        self.bot_id = bot_id
        self.downloads: list[FileInfo] = []
        """Files fetched through ``/file/bot<token>/<path>``, in order."""
        # One sequence numbers files, media groups and queries: ids never repeat in a run.
        self._ids = itertools.count(1)
        self._files: dict[str, FileInfo] = {}
        self._files_by_path: dict[str, FileInfo] = {}
        self._photo_groups: dict[str, list[FileInfo]] = {}

    def add_file(self, data: bytes, *, file_path_suffix: str = ".jpg") -> FileInfo:
        """Registers bytes as a Telegram file (image suffixes register a photo)."""
        suffix = file_path_suffix if file_path_suffix.startswith(".") else f".{file_path_suffix}"
        if suffix.lower() in _IMAGE_SUFFIXES:
            width, height = _image_size(data)
            return self._register_file(
                data, kind="photo", suffix=suffix, width=width, height=height
            )
        mime = mimetypes.guess_type(f"file{suffix}")[0]
        return self._register_file(data, kind="document", suffix=suffix, mime_type=mime)

    def file(self, file_id: str) -> FileInfo:
        """A registered file by id (KeyError if unknown)."""
        return self._files[file_id]

    def _register_file(
        self,
        data: bytes,
        *,
        kind: str,
        suffix: str,
        width: int | None = None,
        height: int | None = None,
        mime_type: str | None = None,
        file_name: str | None = None,
    ) -> FileInfo:
        number = next(self._ids)
        if kind == "photo":
            prefix, unique_prefix, folder = "AgACAgIAAxkBAAI", "AQAD", "photos"
        else:
            prefix, unique_prefix, folder = "BQACAgIAAxkBAAI", "AgAD", "documents"
        info = FileInfo(
            file_id=f"{prefix}{number:08d}{self.bot_id:x}fAkEtElEgRaM",
            file_unique_id=f"{unique_prefix}{number:08d}",
            file_path=f"{folder}/file_{number}{suffix.lower()}",
            file_size=len(data),
            data=bytes(data),
            kind=kind,
            width=width,
            height=height,
            mime_type=mime_type,
            file_name=file_name,
        )
        self._files[info.file_id] = info
        self._files_by_path[info.file_path] = info
        return info

    def _register_photo(self, data: bytes) -> list[FileInfo]:
        """Validates an uploaded photo and registers its PhotoSizes (thumbnails first)."""
        if not data:
            raise bad("file must be non-empty")
        if len(data) > _MAX_PHOTO_BYTES:
            raise bad("PHOTO_SAVE_FILE_INVALID")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                width, height = image.size
                if width + height > 10_000 or max(width, height) > 20 * min(width, height):
                    raise bad("PHOTO_INVALID_DIMENSIONS")
                longest = max(width, height)
                sides = [side for side in (90, 320) if side < longest] or [max(1, longest // 2)]
                thumbnails: list[tuple[bytes, int, int]] = []
                for side in sides:
                    thumb = image.convert("RGB")
                    thumb.thumbnail((side, side))
                    buffer = io.BytesIO()
                    thumb.save(buffer, format="JPEG", quality=80)
                    thumbnails.append((buffer.getvalue(), *thumb.size))
        except Image.DecompressionBombError as exc:
            raise bad("PHOTO_INVALID_DIMENSIONS") from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise bad("IMAGE_PROCESS_FAILED") from exc
        sizes = [
            self._register_file(thumb, kind="photo", suffix=".jpg", width=w, height=h)
            for thumb, w, h in thumbnails
        ]
        sizes.append(
            self._register_file(data, kind="photo", suffix=".jpg", width=width, height=height)
        )
        for size in sizes:
            self._photo_groups[size.file_id] = sizes
        return sizes

    def _input_file(
        self, value: Any, uploads: dict[str, Upload], field_name: str | None
    ) -> Upload | FileInfo:
        """Resolves a file parameter: an upload, ``attach://name`` or a file_id."""
        if field_name is not None and field_name in uploads:
            return uploads[field_name]
        if isinstance(value, str) and value:
            if value.startswith("attach://"):
                upload = uploads.get(value.removeprefix("attach://"))
                if upload is None:
                    raise bad(f'file "{value}" is not found in the request')
                return upload
            info = self._files.get(value)
            if info is not None:
                return info
            if value.startswith(("http://", "https://")):
                raise NotModelled("files sent by HTTP URL")
            raise bad("wrong file identifier/HTTP URL specified")
        raise bad(f"there is no {field_name or 'media'} in the request")

    def _photo_sizes(
        self, value: Any, uploads: dict[str, Upload], field_name: str | None
    ) -> list[FileInfo]:
        source = self._input_file(value, uploads, field_name)
        if isinstance(source, Upload):
            return self._register_photo(source.data)
        if source.kind != "photo":
            raise bad("can't use file of type Document as Photo")
        return self._photo_groups.get(source.file_id) or [source]

    def _document(self, value: Any, uploads: dict[str, Upload], field_name: str | None) -> FileInfo:
        source = self._input_file(value, uploads, field_name)
        if isinstance(source, FileInfo):
            if source.kind != "document":
                raise bad("can't use file of type Photo as Document")
            return source
        if not source.data:
            raise bad("file must be non-empty")
        file_name = source.filename or "document"
        suffix = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        mime = source.content_type or mimetypes.guess_type(file_name)[0]
        return self._register_file(
            source.data, kind="document", suffix=suffix, mime_type=mime, file_name=file_name
        )

    async def _get_file(self, params: Json, uploads: dict[str, Upload]) -> Any:
        info = self._files.get(str(params.get("file_id") or ""))
        if info is None:
            raise bad("invalid file_id")
        if info.file_size > MAX_DOWNLOAD_BYTES:
            raise bad("file is too big")
        return info.file_json()
