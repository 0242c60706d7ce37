"""A real S3-compatible server on 127.0.0.1 for the tests: moto's server in a thread.

`MotoS3.start()` serves the S3 REST API (signed requests, presigned URLs, bucket
policies) on a free loopback port; `admin()` opens an aiobotocore client to inspect
or prepare buckets behind the bot's back.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiobotocore.session import AioSession, get_session
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

REGION = "us-east-1"
ACCESS_KEY = "moto-test-access-key"
SECRET_KEY = "moto-test-secret-key"


@dataclass
class StoredObject:
    key: str
    data: bytes
    content_type: str


@dataclass
class MotoS3:
    """A running moto S3 server."""

    server: ThreadedMotoServer
    url: str
    #: One botocore session for every client: it caches the service model (fast clients).
    session: AioSession = field(default_factory=get_session)

    @classmethod
    def start(cls) -> MotoS3:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return cls(server, f"http://{host}:{port}")

    def stop(self) -> None:
        self.server.stop()

    @asynccontextmanager
    async def admin(self) -> AsyncIterator[S3Client]:
        async with self.session.create_client(
            "s3",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        ) as client:
            yield client

    async def create_bucket(self, *, public: bool = False) -> str:
        """A new bucket with a unique name; `public` allows anonymous GetObject."""
        name = f"test-{secrets.token_hex(6)}"
        async with self.admin() as client:
            await client.create_bucket(Bucket=name)
            if public:
                policy = {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{name}/*",
                        }
                    ],
                }
                await client.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        return name

    async def keys(self, bucket: str, prefix: str = "") -> list[str]:
        async with self.admin() as client:
            found: list[str] = []
            async for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                found.extend(obj.get("Key", "") for obj in page.get("Contents", []))
            return sorted(found)

    async def get(self, bucket: str, key: str) -> StoredObject:
        async with self.admin() as client:
            answer = await client.get_object(Bucket=bucket, Key=key)
            async with answer["Body"] as body:
                data = await body.read()
            return StoredObject(key, data, answer.get("ContentType", ""))

    async def put(self, bucket: str, key: str, data: bytes = b"x") -> None:
        async with self.admin() as client:
            await client.put_object(Bucket=bucket, Key=key, Body=data)
