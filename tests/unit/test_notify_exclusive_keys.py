"""Keys that exclude each other (`x` / `x_file` and the like), in every receiver and kind: one rule
(`core.notify.exclusive_keys`), Alertmanager's messages. Where the installed amtool (0.25) knows both keys,
it is asked too and must refuse the same file with the same message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.config import load_notify_config

R = "route: {receiver: r}\nreceivers:\n  - name: r\n"
HOOK = "    webhook_configs:\n      - url: 'http://127.0.0.1:9/'\n"
HTTP = HOOK + "        http_config: "

# (config text, the message, whether amtool 0.25 has both keys)
CASES = [
    (R + HOOK + "        url_file: /run/secrets/url\n", "at most one of url & url_file must be configured", False),
    (R + "    webhook_configs:\n      - max_alerts: 1\n", "one of url or url_file must be configured", False),
    (R + HTTP + "{bearer_token: t, bearer_token_file: /run/t}\n",
     "at most one of bearer_token & bearer_token_file must be configured", True),
    (R + HTTP + "{basic_auth: {username: u, password: p, password_file: /run/p}}\n",
     "at most one of basic_auth password & password_file must be configured", True),
    (R + HTTP + "{authorization: {credentials: c, credentials_file: /run/c}}\n",
     "at most one of authorization credentials & credentials_file must be configured", True),
    (R + HTTP + "{oauth2: {client_id: i, client_secret: s, client_secret_file: /run/s, "
     "token_url: 'http://127.0.0.1:9/t'}}\n",
     "at most one of oauth2 client_secret & client_secret_file must be configured", True),
    ("global: {slack_api_url: 'http://127.0.0.1:9/', slack_api_url_file: /run/s}\n" + R,
     "at most one of slack_api_url & slack_api_url_file must be configured", True),
    (R + "    slack_configs:\n      - {api_url: 'http://127.0.0.1:9/', api_url_file: /run/s, channel: c}\n",
     "at most one of api_url & api_url_file must be configured", True),
    (R + "    pagerduty_configs:\n      - {routing_key: k, routing_key_file: /run/k}\n",
     "at most one of routing_key & routing_key_file must be configured", True),
    (R + "    pagerduty_configs:\n      - {service_key: k, service_key_file: /run/k}\n",
     "at most one of service_key & service_key_file must be configured", True),
    (R + "    opsgenie_configs:\n      - {api_key: k, api_key_file: /run/k}\n",
     "at most one of api_key & api_key_file must be configured", True),
    (R + "    victorops_configs:\n      - {routing_key: r, api_key: k, api_key_file: /run/k}\n",
     "at most one of api_key & api_key_file must be configured", True),
    (R + "    telegram_configs:\n      - {bot_token: t, bot_token_file: /run/t, chat_id: 1}\n",
     "at most one of bot_token & bot_token_file must be configured", False),
    (R + "    discord_configs:\n      - {webhook_url: 'http://127.0.0.1:9/', webhook_url_file: /run/u}\n",
     "at most one of webhook_url & webhook_url_file must be configured", False),
    (R + "    msteams_configs:\n      - {title: t}\n", "one of webhook_url or webhook_url_file must be configured",
     False),
    (R + "    msteamsv2_configs:\n      - {webhook_url: 'http://127.0.0.1:9/', webhook_url_file: /run/u}\n",
     "at most one of webhook_url & webhook_url_file must be configured", False),
]


@pytest.mark.parametrize(("text", "message", "amtool_knows"), CASES)
def test_exclusive_keys_are_refused_with_alertmanagers_message(text: str, message: str, amtool_knows: bool,
                                                               tmp_path: Path) -> None:
    with pytest.raises(SourceError) as exc:
        load_notify_config(text, "am.yml")
    assert message in exc.value.message
    amtool = shutil.which("amtool")
    if amtool_knows and amtool:
        (tmp_path / "am.yml").write_text(text)
        out = subprocess.run([amtool, "check-config", str(tmp_path / "am.yml")], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode != 0 and message in out.stdout + out.stderr, out.stdout + out.stderr


def test_one_of_each_loads() -> None:
    text = (R + HTTP + "{bearer_token_file: /run/t}\n" + "    discord_configs:\n      - {webhook_url_file: /run/u}\n"
            "    msteams_configs:\n      - {webhook_url: 'http://127.0.0.1:9/'}\n")
    cfg = load_notify_config(text, "am.yml")
    r = cfg.receivers["r"]
    assert r.webhook_configs[0].http_config is not None
    assert r.webhook_configs[0].http_config.bearer_token_file == "/run/t"
    assert [c.get("webhook_url_file") for c in r.discord_configs] == ["/run/u"]
    assert [c.get("webhook_url") for c in r.msteams_configs] == ["http://127.0.0.1:9/"]
