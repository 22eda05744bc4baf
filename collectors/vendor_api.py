"""The vendor's write calls (what the SDKs do): create, start and read a job, upload a file, probe an output,
and the admin API's key actions. Answers go through the contract; nothing here is landed or logged with
its body, because one of them (a new key) carries a secret."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collectors import contract
from collectors.http_client import ApiClient, ApiError

__all__ = ["ApiError", "CreatedKey", "Sent", "VendorApi"]


@dataclass(frozen=True)
class Sent:
    """A parsed answer and the request id the API gave it."""

    value: Any
    request_id: str | None


@dataclass(frozen=True)
class CreatedKey:
    """POST /v1/admin/keys: the new key, and its secret, which the API shows this once."""

    key: contract.InventoryKey
    secret: str = ""  # never stored, logged or exported: shown once, then dropped
    request_id: str | None = None

    def __repr__(self) -> str:  # a traceback or debug print must not show the secret
        return f"CreatedKey(key={self.key!r}, request_id={self.request_id!r})"


def _parsed(parse: Any, body: Any, what: str) -> Any:
    try:
        return parse(body)
    except (ValueError, TypeError, AttributeError) as exc:
        raise contract.ContractError(f"{what}: {exc}") from None


class VendorApi:
    """The calls one smoke check or key action makes, over the product's one HTTP client and retry policy."""

    def __init__(self, client: ApiClient, admin_token: str | None = None) -> None:
        self.client = client
        self._admin_token = admin_token

    def _key(self, secret: str) -> dict[str, str]:
        return {"X-Api-Key": secret}

    def _admin(self) -> dict[str, str]:
        if not self._admin_token:
            raise ApiError("no_admin_token", "no admin token is configured", status=None, request_id=None, attempts=0)
        return {"X-Admin-Token": self._admin_token}

    async def create_job(
        self,
        secret: str,
        *,
        video_url: str,
        model: str,
        output_format: str = "mp4",
        bg_type: str | None = None,
        auto_start: bool = True,
        webhook_url: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Sent:
        payload: dict[str, Any] = {"video_url": video_url, "model": model, "output_format": output_format}
        payload |= {"auto_start": auto_start}
        if bg_type is not None:
            payload["bg_type"] = bg_type
        if webhook_url is not None:
            payload["webhook_url"] = webhook_url
        if metadata:
            payload["metadata"] = metadata
        answer = await self.client.send("POST", "/v1/jobs", json=payload, headers=self._key(secret), label="create job")
        return Sent(_parsed(_one_job, answer.body, "create job"), answer.request_id)

    async def start_job(self, secret: str, job_id: str) -> Sent:
        answer = await self.client.send(
            "POST", f"/v1/jobs/{job_id}/start", headers=self._key(secret), label="start job", idempotent=True
        )
        return Sent(_parsed(_one_job, answer.body, "start job"), answer.request_id)

    async def get_job(self, secret: str, job_id: str) -> Sent:
        answer = await self.client.get_json(f"/v1/jobs/{job_id}", headers=self._key(secret), label="poll job")
        return Sent(_parsed(_one_job, answer.body, "poll job"), answer.request_id)

    async def upload(self, secret: str, filename: str, data: bytes, content_type: str = "video/mp4") -> Sent:
        answer = await self.client.send(
            "POST", "/v1/uploads", files={"file": (filename, data, content_type)}, headers=self._key(secret),
            label="upload",
        )  # fmt: skip
        return Sent(_parsed(contract.parse_upload, answer.body, "upload"), answer.request_id)

    async def probe(self, url: str) -> tuple[int | None, int, str | None]:
        """(status, bytes read, error): whether an output URL answers; no API headers are sent to it."""
        return await self.client.probe(url)

    async def inventory(self) -> Sent:
        answer = await self.client.get_json("/v1/admin/keys", headers=self._admin(), label="admin keys")
        rows, rejects = contract.parse_inventory(answer.body)
        if not rows and rejects:
            raise contract.ContractError(rejects[0][0])
        return Sent(rows, answer.request_id)

    async def create_key(self, client_id: str, note: str) -> CreatedKey:
        """POST /v1/admin/keys with the documented body, `{client_id, note}`."""
        answer = await self.client.send(
            "POST", "/v1/admin/keys", json={"client_id": client_id, "note": note}, headers=self._admin(),
            label="admin create key",
        )  # fmt: skip
        secret = _parsed(contract.parse_created_secret, answer.body, "admin create key")
        key = _parsed(contract.parse_inventory_item, answer.body, "admin create key")
        return CreatedKey(key, secret, answer.request_id)

    async def set_enabled(self, fingerprint: str, enabled: bool) -> Sent:
        path = "/v1/admin/keys/enable" if enabled else "/v1/admin/keys/disable"
        answer = await self.client.send(
            "POST", path, json={"key_fingerprint": fingerprint}, headers=self._admin(), label=path, idempotent=True
        )
        return Sent(_parsed(contract.parse_inventory_item, answer.body, path), answer.request_id)

    async def admin_config(self) -> Sent:
        answer = await self.client.get_json("/v1/admin/config", headers=self._admin(), label="admin config")
        return Sent(answer.body if isinstance(answer.body, dict) else {}, answer.request_id)


def _one_job(body: Any) -> contract.Job:
    jobs, rejects = contract.parse_job_detail(body)
    if not jobs:
        raise ValueError(rejects[0][0] if rejects else "no job in the answer")
    return jobs[0]
