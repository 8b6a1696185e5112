"""What measuring the loader against `amtool check-config` on real-world configs found (README "Alert
delivery"): URLs are parsed at load as Alertmanager's parseURL does (a placeholder such as
`${SLACK_WEBHOOK_URL}` or `url` is refused, with amtool's message, file and line), and label values in `match`
maps are taken as written (`test: 2` is "2"). Every config here is written for this test."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.cli import main
from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.am_url import URLError, parse_url
from watchkeeper.core.notify.config import load_notify_config

HEAD = "route: {receiver: r}\nreceivers:\n  - name: r\n"


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    # A placeholder left for envsubst: amtool says `unsupported scheme "" for URL`.
    (HEAD + "    slack_configs:\n      - channel: '#ops'\n        api_url: '${SLACK_WEBHOOK_URL}'\n",
     6, "receivers.0.slack_configs.0.api_url", 'unsupported scheme "" for URL'),
    ("global:\n  slack_api_url: url\n" + HEAD, 2, "global.slack_api_url", 'unsupported scheme "" for URL'),
    ("global:\n  slack_api_url: ''\n" + HEAD, 2, "global.slack_api_url", 'unsupported scheme "" for URL'),
    ("global:\n  opsgenie_api_url: 'ftp://127.0.0.1/'\n" + HEAD, 2, "global.opsgenie_api_url",
     'unsupported scheme "ftp" for URL'),
    (HEAD + "    webhook_configs:\n      - url: 'http:///hook'\n", 5, "receivers.0.webhook_configs.0.url",
     "missing host for URL"),
    (HEAD + "    webhook_configs:\n      - url: 'http://127.0.0.1:port/'\n", 5, "receivers.0.webhook_configs.0.url",
     'parse "http://127.0.0.1:port/": invalid port ":port" after host'),
    (HEAD + "    pagerduty_configs:\n      - routing_key: k\n        url: 'http://127.0.0.1/%zz'\n", 6,
     "receivers.0.pagerduty_configs.0.url", 'parse "http://127.0.0.1/%zz": invalid URL escape "%zz"'),
    # The other kinds' URL keys name their own line too.
    (HEAD + "    telegram_configs:\n      - bot_token: t\n        chat_id: 1\n        api_url: TELEGRAM_API\n", 7,
     "receivers.0.telegram_configs.0.api_url", 'unsupported scheme "" for URL'),
    (HEAD + "    discord_configs:\n      - webhook_url: 'http://127.0.0.1 :9/'\n", 5,
     "receivers.0.discord_configs.0.webhook_url", 'parse "http://127.0.0.1 :9/": invalid character " " in host name'),
    # An SMTP smarthost is host:port (Go's net.SplitHostPort), in `global` and in an email receiver.
    ("global:\n  smtp_smarthost: '${SMTP_HOST}'\n" + HEAD, 2, "global.smtp_smarthost",
     "address ${SMTP_HOST}: missing port in address"),
    (HEAD + "    email_configs:\n      - to: ops@example.org\n        from: am@example.org\n"
     "        smarthost: 'smtp:'\n", 7, "receivers.0.email_configs.0.smarthost",
     'address "smtp:": port cannot be empty'),
])
def test_a_url_alertmanager_refuses_is_refused_at_load(text: str, line: int, field: str, message: str) -> None:
    with pytest.raises(SourceError) as exc:
        load_notify_config(text, "am.yml")
    assert (exc.value.line, exc.value.field) == (line, field)
    assert str(exc.value).startswith(f"am.yml:{line}: {field}: ") and str(exc.value).endswith(message)


def test_urls_alertmanager_takes_load_and_null_leaves_the_default() -> None:
    cfg = load_notify_config("global:\n  pagerduty_url: ~\n  smtp_smarthost: '[::1]:25'\n  slack_api_url: 'HTTPS://127.0.0.1:9/services/x'\n"
                             + HEAD + "    slack_configs: [{channel: '#ops'}]\n"
                             "    webhook_configs: [{url: 'http://[::1]:9/hook?a=%zz'}]\n", "am.yml")
    assert cfg.global_.pagerduty_url == "https://events.pagerduty.com/v2/enqueue"
    assert cfg.global_.slack_api_url == "HTTPS://127.0.0.1:9/services/x"  # Go lower-cases the scheme
    assert cfg.receivers["r"].webhook_configs[0].url == "http://[::1]:9/hook?a=%zz"  # the query is not checked


@pytest.mark.parametrize(("url", "message"), [
    ("not a url", 'unsupported scheme "" for URL'),
    ("127.0.0.1:9093", 'parse "127.0.0.1:9093": first path segment in URL cannot contain colon'),
    ("localhost:9093", 'unsupported scheme "localhost" for URL'),
    ("http:127.0.0.1", "missing host for URL"),
    (":9093", 'parse ":9093": missing protocol scheme'),
    ("a b:c", 'parse "a b:c": first path segment in URL cannot contain colon'),
    ("http://a b/", 'parse "http://a b/": invalid character " " in host name'),
    ("http://[::1/", "parse \"http://[::1/\": missing ']' in host"),
    ("http://127.0.0.1/\x01", 'parse "http://127.0.0.1/\\x01": net/url: invalid control character in URL'),
    ("http://h%41/", 'parse "http://h%41/": invalid URL escape "%41"'),  # in a host only non-ASCII bytes
    ("http://u{s@127.0.0.1/", 'parse "http://u{s@127.0.0.1/": net/url: invalid userinfo'),
    ("http://127.0.0.1/#%g", 'parse "http://127.0.0.1/#%g": invalid URL escape "%g"'),
    (8080, 'unsupported scheme "" for URL'),
])
def test_parse_url_says_what_amtool_says(url: object, message: str) -> None:
    with pytest.raises(URLError) as exc:
        parse_url(url)
    assert str(exc.value) == message


def test_label_values_are_taken_as_written() -> None:
    cfg = load_notify_config(
        "route:\n  receiver: r\n  routes:\n"
        "    - match: {code: 2, ratio: 2.50, canary: true, hex: 0x1F, empty: ~}\n      receiver: r\n"
        "    - match_re: {code: 5}\n      receiver: r\n"
        "receivers:\n  - name: r\n"
        "inhibit_rules:\n  - source_match: {code: 500}\n    target_match_re: {code: 4}\n", "am.yml")
    got = {m.name: (m.op, m.value) for m in cfg.route.routes[0].matchers}
    assert got == {"code": ("=", "2"), "ratio": ("=", "2.50"), "canary": ("=", "true"), "hex": ("=", "0x1F"),
                   "empty": ("=", "")}
    assert [(m.name, m.value) for m in cfg.route.routes[1].matchers] == [("code", "5")]
    assert cfg.route.routes[1].matchers[0].matches({"code": "5"})
    assert [(m.name, m.value) for m in cfg.inhibit_rules[0].source] == [("code", "500")]
    assert [(m.name, m.value) for m in cfg.inhibit_rules[0].target] == [("code", "4")]


@pytest.mark.parametrize(("text", "line", "field"), [
    ("route:\n  receiver: r\n  routes:\n    - receiver: r\n      match_re:\n        service: ~\n"
     "receivers:\n  - name: r\n", 6, "route.routes.0.match_re.service"),
    ("route: {receiver: r}\nreceivers:\n  - name: r\ninhibit_rules:\n  - target_match: {a: b}\n"
     "    source_match_re:\n      service:\n", 7, "inhibit_rules.0.source_match_re.service"),
])
def test_a_null_regex_is_refused_as_amtool_does(text: str, line: int, field: str) -> None:
    with pytest.raises(SourceError) as exc:
        load_notify_config(text, "am.yml")
    assert (exc.value.line, exc.value.field) == (line, field)
    assert exc.value.message == 'invalid regexp value for "service"'


CORPUS = Path(__file__).parents[1] / "fixtures/alertmanager/corpus"


@pytest.mark.parametrize(("name", "where", "message"), [
    ("wk-bad-slack-placeholder-url.yml", "8: receivers.0.slack_configs.0.api_url",
     'Value error, unsupported scheme "" for URL'),
    ("wk-bad-global-slack-url.yml", "3: global.slack_api_url", 'Value error, unsupported scheme "" for URL'),
    ("wk-bad-null-match-re.yml", "8: route.routes.0.match_re.service", 'invalid regexp value for "service"'),
    ("wk-bad-smarthost.yml", "3: global.smtp_smarthost",
     "Value error, address smtp.example.org: missing port in address"),
])
def test_notify_check_names_file_and_line(name: str, where: str, message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / name
    assert main(["notify", "check", str(path)]) == 1
    assert capsys.readouterr().out.splitlines()[0] == f"Checking '{path}'  FAILED: {path}:{where}: {message}"


def test_notify_check_loads_label_values_written_as_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "check", str(CORPUS / "wk-match-scalars.yml")]) == 0
    assert " - route (3 child routes)\n" in capsys.readouterr().out


R = "route: {receiver: r%s}\nreceivers:\n  - name: r\n%s"
HOOK = "    webhook_configs:\n      - url: 'http://127.0.0.1:9/'\n"
MAIL = "global: {smtp_smarthost: '127.0.0.1:25', smtp_from: am@example.org}\n"
SLACK = "global: {slack_api_url: 'http://127.0.0.1:9/'}\n"


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    # Durations are Prometheus duration strings: a bare number is refused as amtool refuses it.
    (R % (", group_wait: 30", ""), 1, "route.group_wait", "not a Prometheus duration: '30'"),
    ("global: {resolve_timeout: 300}\n" + R % ("", ""), 1, "global.resolve_timeout", "not a Prometheus duration"),
    (R % (", repeat_interval: 0s", ""), 1, "route.repeat_interval", "repeat_interval cannot be zero"),
    (R % (", continue: true", ""), 1, "route.continue", "cannot have continue in root route"),
    (R % (", group_by: [alertname, 'service-name']", ""), 1, "route.group_by.1",
     'invalid label name "service-name" in group_by list'),
    ("route:\n  receiver: r\n  routes:\n    - receiver: r\n      match:\n        'app.kubernetes.io/name': x\n"
     "receivers:\n  - name: r\n", 6, "route.routes.0.match.app.kubernetes.io/name",
     'invalid label name "app.kubernetes.io/name"'),
    (R % ("", "") + "inhibit_rules:\n  - source_matchers: [a=b]\n    target_matchers: [c=d]\n    equal: [cluster-id]\n",
     7, "inhibit_rules.0.equal.0", '"cluster-id" is not a valid label name'),
    (R % ("", HOOK + "        send_resolved: 'false'\n"), 6, "receivers.0.webhook_configs.0.send_resolved",
     "Input should be a valid boolean"),
    (R % ("", HOOK + "        http_config: {bearer_token: t, basic_auth: {username: u}}\n"), 6,
     "receivers.0.webhook_configs.0.http_config",
     "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"),
    (R % ("", HOOK + "        http_config: {authorization: {type: Basic, credentials: c}}\n"), 6,
     "receivers.0.webhook_configs.0.http_config",
     'authorization type cannot be set to "basic", use "basic_auth" instead'),
    (R % ("", HOOK + "        http_config: {oauth2: {client_id: c, token_url: 'http://127.0.0.1:9/t'}}\n"), 6,
     "receivers.0.webhook_configs.0.http_config",
     "either oauth2 client_secret or client_secret_file must be configured"),
    (R % ("", HOOK + "        http_config: {tls_config: {ca_path: /etc/ssl}}\n"), 6,
     "receivers.0.webhook_configs.0.http_config.tls_config", "field ca_path not found in tls_config"),
    (SLACK + R % ("", "    slack_configs:\n      - fields: [{title: Env}]\n"), 6, "receivers.0.slack_configs.0",
     "missing value in Slack field configuration"),
    (SLACK + R % ("", "    slack_configs:\n      - actions: [{type: button, text: Runbook}]\n"), 6,
     "receivers.0.slack_configs.0", "missing name or url in Slack action configuration"),
    (MAIL + R % ("", "    email_configs:\n      - to: ''\n"), 6, "receivers.0.email_configs.0.to",
     "missing to address in email config"),
])
def test_what_amtool_refuses_is_refused_with_file_and_line(text: str, line: int, field: str, message: str) -> None:
    with pytest.raises(SourceError) as exc:
        load_notify_config(text, "am.yml")
    assert (exc.value.line, exc.value.field) == (line, field)
    assert message in exc.value.message


def test_what_amtool_takes_loads() -> None:
    cfg = load_notify_config(
        SLACK + R % (", group_wait: 0, repeat_interval: 1d",
                     HOOK + "        http_config: {oauth2: {client_id: c, client_secret: s, token_url: "
                     "'http://127.0.0.1:9/t'}, tls_config: {insecure_skip_verify: true}}\n"
                     "    pagerduty_configs:\n      - routing_key: k\n        details: {attempt: 3, ratio: 0.5}\n"
                     "    slack_configs:\n      - fields: [{title: Env, value: prod, short: true}]\n"
                     "        actions: [{type: button, text: Runbook, url: 'http://127.0.0.1:9/rb'}]\n"), "am.yml")
    assert (cfg.route.group_wait, cfg.route.repeat_interval) == (0.0, 86400.0)
    assert cfg.receivers["r"].pagerduty_configs[0].details == {"attempt": "3", "ratio": "0.5"}
