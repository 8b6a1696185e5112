"""Acknowledging over HTTP, as the runbooks do: `POST /api/v2/alerts/acknowledge` on the dashboard's server
(the dashboard's button posts here too), into the store `watchkeeper ack` writes and the notification sink
reads. The dashboard's guard middleware has already refused other sites' pages and, off loopback, requests
without the token, before a handler here runs.

Body (JSON): `{"fingerprint": "...", "comment": "...", "by": "...", "expires": "2h"}`, or `matchers`
instead of `fingerprint`, as strings (`["alertname=DiskFull", "instance=~\\"web-.*\\""]`) or as
Alertmanager's v2 matcher objects (`{"name", "value", "isRegex", "isEqual"}`); `createdBy` is taken for
`by`. Answers 201 with the ack and the fingerprints of the firing alerts it covers now.

`GET /api/acks` lists the current acks and every group's escalation ("level 2 of 3 since 10:42, not
acknowledged") for the page."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from watchkeeper.core.notify.acks import Ack, AckError
from watchkeeper.core.notify.escalation import EscalationState
from watchkeeper.core.notify.notification import rfc3339
from watchkeeper.core.slo.go_format import parse_prom_duration
from watchkeeper.sinks.ack_store import AckStore, ack_store_path, acknowledge, firing_alerts
from watchkeeper.sinks.notify_store import store_paths

MAX_BODY = 64 * 1024


class AmMatcher(BaseModel):
    name: str
    value: str
    isRegex: bool = False
    isEqual: bool = True

    def text(self) -> str:
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        return f"{self.name}{op[(self.isRegex, self.isEqual)]}{orjson.dumps(self.value).decode()}"


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    fingerprint: str = ""
    matchers: list[str | AmMatcher] = Field(default_factory=list)
    comment: str = Field(min_length=1, max_length=2000)
    by: str = Field(default="", alias="createdBy", max_length=200)
    expires: float | None = None

    @field_validator("expires", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        if v is None or isinstance(v, int | float):
            return v
        return parse_prom_duration(str(v))

    def matchers_text(self) -> str:
        return ",".join(m if isinstance(m, str) else m.text() for m in self.matchers)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def ack_json(a: Ack, now: float) -> dict[str, Any]:
    return {"id": a.id, "fingerprint": a.fingerprint, "matchers": a.target if a.matchers else "",
            "target": a.target, "by": a.by, "comment": a.comment, "createdAt": rfc3339(a.created_at),
            "createdAtMs": int(a.created_at * 1000),
            "expiresAt": None if math.isinf(a.expires_at) else rfc3339(a.expires_at), "state": a.state(now)}


def acknowledge_handler(data_path: Path) -> Any:

    async def handler(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _json({"error": f"body over {MAX_BODY} bytes"}, 413)
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _json({"error": f"body over {MAX_BODY} bytes"}, 413)
        try:
            req = AckRequest.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError, ValueError) as exc:
            return _json({"error": f"bad acknowledgement: {str(exc).splitlines()[0][:300]}; send JSON "
                                   '{"fingerprint": "...", "comment": "..."} or {"matchers": ["alertname=X"], '
                                   '"comment": "...", "by": "...", "expires": "2h"}'}, 400)
        now = time.time()
        try:
            ack, covered = await asyncio.to_thread(
                acknowledge, data_path, comment=req.comment, by=req.by or "dashboard", fingerprint=req.fingerprint,
                matchers=req.matchers_text(), expires_in=req.expires, now=now)
        except AckError as exc:
            return _json({"error": str(exc)}, 400)
        return _json({**ack_json(ack, now), "covers": sorted(a.fingerprint for a in covered)}, 201)

    return handler


def read_acks_and_escalations(data_path: Path, now: float) -> dict[str, Any]:
    """Active acks, with the firing alerts each covers, and every group's escalation, for the page."""
    path = ack_store_path(data_path)
    acks: list[Ack] = []
    if path.exists():
        store = AckStore(path)
        try:
            acks = store.active(now)
        finally:
            store.close()
    state = store_paths(data_path)[0]
    firing = firing_alerts(state)
    by_alert: dict[str, dict[str, Any]] = {}
    for a in acks:
        for al in firing:
            if a.covers(al, now) and al.fingerprint not in by_alert:
                by_alert[al.fingerprint] = ack_json(a, now)
    return {"acks": [ack_json(a, now) for a in acks], "by_alert": by_alert,
            "escalations": _escalations(state, firing, by_alert)}


def _escalations(state: Path, firing: list[Any], by_alert: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    if not state.exists():
        return []
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT state FROM escalations").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()
    out = []
    for (blob,) in rows:
        st = EscalationState.from_json(orjson.loads(blob))
        mine = [a for a in firing if all(a.labels.get(k) == v for k, v in st.labels.items())]
        acked = [by_alert[a.fingerprint] for a in mine if a.fingerprint in by_alert]
        if mine and len(acked) == len(mine):
            ack_text = "acknowledged by " + ", ".join(sorted({a["by"] for a in acked}))
        else:
            ack_text = "held: acknowledged" if st.held else "not acknowledged"
        text = f"level {st.level} since {rfc3339(st.since)[11:16]} UTC, {ack_text}"
        out.append({"group_key": st.group_key, "policy": st.policy, "level": st.level, "labels": st.labels,
                    "alerts": [a.fingerprint for a in mine],
                    "since": rfc3339(st.since), "sinceMs": int(st.since * 1000), "held": st.held, "text": text,
                    "history": [{"level": lv, "at": rfc3339(t)} for lv, t in st.history]})
    return out


def acks_handler(data_path: Path) -> Any:

    async def handler(request: web.Request) -> web.Response:
        return _json(await asyncio.to_thread(read_acks_and_escalations, data_path, time.time()))

    return handler
