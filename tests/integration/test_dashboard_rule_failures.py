"""The dashboard shows the workers' last rule evaluation failures (vmalert's rule view): given a worker's report
of a rule failing at two ticks, expect both on `/api/overview`, newest first, with the group's count."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from watchkeeper.agents.rule_failure_report import RuleFailureReport
from watchkeeper.commands.dashboard import dashboard_settings
from watchkeeper.core.rules.eval_failures import EvalFailure
from watchkeeper.dashboard import create_dashboard_app
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config


async def test_the_overview_lists_the_last_rule_failures(tmp_path: Path, ch_dsn: str) -> None:
    cfg = Config(data_dir=str(tmp_path / "data"))
    report = RuleFailureReport(cfg.data_path, "worker-host:4242")
    report.report([EvalFailure("node", "HostDown", 60.0, "vector contains metrics with the same labelset"),
                   EvalFailure("node", "HostDown", 120.0, "vector contains metrics with the same labelset")])
    report.publish()
    runner = web.AppRunner(create_dashboard_app(dashboard_settings(cfg, ch_dsn)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/api/overview") as r:
            body = await r.json()
    finally:
        await runner.cleanup()
    got = body["rule_failures"]
    assert got["counts"] == {"node": 2}
    assert [(f["rule"], f["t"]) for f in got["recent"]] == [("HostDown", 120.0), ("HostDown", 60.0)]
