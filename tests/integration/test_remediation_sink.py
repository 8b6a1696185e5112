"""Self-healing that checks its own work, through the real notification sink (subprocess, real tansu): a
command hook with `verify:` restarts a local HTTP service, then the sink probes it for real. Given a service
that comes back, expect "RECOVERED" told and no escalation; given one that stays down, expect "RECOVERY
FAILED" with the command's exit status and output, and the next escalation level paged at once; given a
flapping alert, the command runs at most once per cooldown."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until
from tests.integration.notify_peers import RecordingServer, ServedApp
from tests.integration.test_notify_sink import send, start_sink, wait_for
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas.alerts import AlertEvent


class Service:
    """A service that is down (503) until `POST /restart`; counts restarts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.healthy = False
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        async def health(_: web.Request) -> web.Response:
            return web.Response(status=200 if self.healthy else 503, text="ok" if self.healthy else "down")

        async def restart(_: web.Request) -> web.Response:
            self.restarts += 1
            self.healthy = True
            return web.Response(text="restarted")

        app = web.Application()
        app.router.add_get("/healthz", health)
        app.router.add_post("/restart", restart)
        self._served = ServedApp(app, self.port)
        return self

    def stop(self) -> None:
        self._served.stop()


def _restart_cmd(url: str) -> list[str]:
    return [sys.executable, "-c", f"import urllib.request; urllib.request.urlopen('{url}/restart', data=b'');"
                                  "print('restarted web')"]


CONFIG = """
escalation_policies:
  - name: ops-tech
    levels:
      - {{receivers: [ops], after: 1h}}
      - {{receivers: [tech]}}
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  escalation: ops-tech
  routes:
    - matchers: ['alertname="WebDown"']
      receiver: web-restart
      continue: true
    - matchers: ['alertname="ApiDown"']
      receiver: api-restart
      continue: true
receivers:
  - name: ops
    webhook_configs: [{{url: "{rec}/ops"}}]
  - name: tech
    webhook_configs: [{{url: "{rec}/tech"}}]
  - name: web-restart
    command_configs:
      - command: {web_cmd}
        cooldown: 30m
        verify: {{http: "{web}/healthz", within: 5s, interval: 500ms, report_to: [ops]}}
  - name: api-restart
    command_configs:
      - command: {api_cmd}
        verify: {{http: "{api}/healthz", within: 2s, interval: 500ms, report_to: [ops]}}
"""


def alert(name: str, state: str, t: float) -> AlertEvent:
    return AlertEvent(fingerprint=f"fp{name}", rule=name, state=state,  # type: ignore[arg-type]
                      labels={"alertname": name, "severity": "critical"}, annotations={"summary": f"{name} is down"},
                      starts_at=t, ends_at=t + 1 if state == "resolved" else None, event_time=t)


@pytest.fixture
def peers() -> Iterator[tuple[RecordingServer, Service, Service]]:
    rec, web_svc, api_svc = RecordingServer().start(), Service().start(), Service().start()
    yield rec, web_svc, api_svc
    rec.stop()
    web_svc.stop()
    api_svc.stop()


def test_restart_then_verify_recovered_failed_and_cooldown(
        wk_config: Config, tmp_path: Path, peers: tuple[RecordingServer, Service, Service]) -> None:
    rec, web_svc, api_svc = peers
    # the api hook "restarts" nothing (it exits 0 and prints), so the api stays down
    api_cmd = [sys.executable, "-c", "print('systemctl restart api: done')"]
    (tmp_path / "alertmanager.yml").write_text(CONFIG.format(
        rec=rec.url, web=web_svc.url, api=api_svc.url, web_cmd=orjson.dumps(_restart_cmd(web_svc.url)).decode(),
        api_cmd=orjson.dumps(api_cmd).decode()))
    wk_config.notify.alertmanager_config = str(tmp_path / "alertmanager.yml")
    log = tmp_path / "sink.log"
    proc = start_sink(write_config(wk_config, tmp_path / "watchkeeper.yaml"), log)

    def told(path: str, head: str) -> list[dict[str, object]]:
        return [r.body for r in rec.at(path) if any(a["annotations"].get("remediation", "").startswith(head)
                                                  for a in r.body["alerts"])]
    try:
        t0 = time.time()
        send(wk_config, [alert("WebDown", "firing", t0), alert("ApiDown", "firing", t0)])
        wait_for(lambda: told("/ops", "RECOVERED") and told("/ops", "RECOVERY FAILED") and rec.at("/tech"),
                 60, proc, log)
        assert web_svc.restarts == 1
        (ok,) = told("/ops", "RECOVERED")
        assert ok["commonAnnotations"]["remediation"] == "RECOVERED: service is back online"  # type: ignore[index]
        (bad,) = told("/ops", "RECOVERY FAILED")
        detail = bad["commonAnnotations"]["remediation_detail"]  # type: ignore[index]
        assert "exit status 0" in detail and "systemctl restart api: done" in detail and "answered 503" in detail
        # the failure paged the next level at once, not after level 1's hour; only for the api's group
        assert [r.body["commonLabels"]["alertname"] for r in rec.at("/tech")] == ["ApiDown"]
        # flapping: WebDown resolves and fires again inside the cooldown: no second restart
        web_svc.healthy = False
        send(wk_config, [alert("WebDown", "resolved", t0 + 10)])
        time.sleep(2)
        send(wk_config, [alert("WebDown", "firing", t0 + 20)])
        recs = asyncio.run(consume_until(wk_config.kafka.bootstrap, wk_config.kafka.topics.notifications,
                                         lambda rs: any(orjson.loads(r.value)["status"] == "remediation_skipped"
                                                        for r in rs)))
    finally:
        proc.terminate()
        proc.wait(30)
    assert web_svc.restarts == 1
    statuses = Counter(orjson.loads(r.value)["status"] for r in recs)
    assert statuses["remediated"] == 1 and statuses["remediation_failed"] == 1 and statuses["remediation_skipped"] == 1
    failed = next(orjson.loads(r.value) for r in recs if orjson.loads(r.value)["status"] == "remediation_failed")
    assert failed["receiver"] == "api-restart" and "RECOVERY FAILED" in failed["error"]
    escalated = [orjson.loads(r.value) for r in recs if orjson.loads(r.value)["status"] == "escalated"]
    assert any(e["receiver"] == "tech" and e["attempt"] == 2 for e in escalated)
