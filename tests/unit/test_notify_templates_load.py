"""Alertmanager configs with `templates:` load: the globs resolve relative to the config file, the files'
named templates reach every receiver field, Alertmanager's default names are there, and every template
error (in a templates file or in a receiver field) is reported at load with the file and line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watchkeeper.cli import main
from watchkeeper.core.errors import SourceError
from watchkeeper.core.notify.config import load_notify_config, load_notify_config_file
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.templates import (
    TemplateError,
    TemplateFileError,
    data_from_json,
    default_templates,
    load_templates,
)
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.channels.base import DeliveryError
from watchkeeper.sinks.channels.email import build_message
from watchkeeper.sinks.channels.pagerduty import pagerduty_event
from watchkeeper.sinks.channels.slack import SlackChannel, slack_message

# The shape of the kube-prometheus-stack chart's default config, with a Slack receiver using the
# organisation's templates from the templates directory.
HELM_STYLE = """\
global:
  resolve_timeout: 5m
inhibit_rules:
  - source_matchers: ['severity = critical']
    target_matchers: ['severity =~ warning|info']
    equal: [namespace, alertname]
route:
  group_by: ['namespace']
  receiver: 'null'
  routes:
    - receiver: 'null'
      matchers: ['alertname = "Watchdog"']
    - receiver: slack
      matchers: ['severity = critical']
receivers:
  - name: 'null'
  - name: slack
    slack_configs:
      - api_url: http://127.0.0.1:9/hook
        channel: '#alerts'
        title: '{{ template "slack.myorg.title" . }}'
        text: '{{ template "slack.myorg.text" . }}'
templates:
  - 'templates/*.tmpl'
"""

MYORG = """\
{{ define "slack.myorg.title" -}}
  [{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} in {{ .GroupLabels.namespace }}
{{- end }}
{{ define "slack.myorg.text" -}}
{{ range .Alerts.Firing }}• {{ .Annotations.summary }} ({{ .Labels.pod }})
{{ end -}}
{{ end }}
{{ define "__alertmanager" }}Watchkeeper{{ end }}
"""


def notification(*pods: str) -> Notification:
    alerts = [AlertEvent(fingerprint=f"{i:016x}", rule="PodCrash", state="firing",
                         labels={"alertname": "PodCrash", "namespace": "web", "severity": "critical", "pod": p},
                         annotations={"summary": f"{p} restarts"}, value=1.0, starts_at=1_700_000_000.0,
                         ends_at=None, event_time=1_700_000_000.0) for i, p in enumerate(pods)]
    return Notification("slack", "slack[0]", "{}:{namespace=\"web\"}", {"namespace": "web"}, alerts, 1_700_000_600.0,
                        "http://127.0.0.1:9093")


@pytest.fixture
def helm_dir(tmp_path: Path) -> Path:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "myorg.tmpl").write_text(MYORG)
    (tmp_path / "alertmanager.yml").write_text(HELM_STYLE)
    return tmp_path


def test_a_helm_style_config_with_templates_loads_and_renders(helm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # the glob is relative to the config file, not to the working directory
    cfg = load_notify_config_file(str(helm_dir / "alertmanager.yml"))
    assert cfg.templates == [str(helm_dir / "templates" / "myorg.tmpl")]
    msg = slack_message(cfg.receivers["slack"].slack_configs[0], notification("api-1", "api-2"), cfg.notify_templates)
    att = msg["attachments"][0]
    assert att["title"] == "[FIRING] PodCrash in web"
    assert att["text"] == "• api-1 restarts (api-1)\n• api-2 restarts (api-2)\n"
    # The file redefines `__alertmanager`, so every default that uses it follows (Slack's username).
    assert msg["username"] == "Watchkeeper" and msg["channel"] == "#alerts"
    assert att["title_link"] == "http://127.0.0.1:9093/#/alerts?receiver=slack"


def test_a_glob_that_matches_nothing_is_no_error(tmp_path: Path) -> None:
    (tmp_path / "am.yml").write_text(HELM_STYLE.replace("templates/*.tmpl", "/nonexistent/dir/*.tmpl")
                                     .replace('slack.myorg.title', 'slack.default.title')
                                     .replace('slack.myorg.text', 'slack.default.text'))
    assert load_notify_config_file(str(tmp_path / "am.yml")).templates == []


def test_a_templates_file_error_names_the_template_file_and_line(helm_dir: Path) -> None:
    (helm_dir / "templates" / "broken.tmpl").write_text('{{ define "a" }}ok{{ end }}\n\n{{ define "b" }}'
                                                        '{{ .Status | toupper }}{{ end }}\n')
    with pytest.raises(SourceError) as err:
        load_notify_config_file(str(helm_dir / "alertmanager.yml"))
    assert err.value.path == str(helm_dir / "templates" / "broken.tmpl") and err.value.line == 3
    assert 'function "toupper" not defined' in str(err.value)
    assert f"alertmanager.yml:{HELM_STYLE.splitlines().index('templates:') + 2} templates.0" in str(err.value)


@pytest.mark.parametrize(("bad", "says"), [
    ('{{ template "slack.myorg.nope" . }}', 'template "slack.myorg.nope" not defined'),
    ("{{ .Alerts.Firing | len }} {{ .Labels.x }}", "can't evaluate field Labels in type *template.Data"),
    ("{{ if .Status }}x", "without {{end}}"),
    ("{{ humanize 3 }}", 'function "humanize" not defined'),
])
def test_a_receiver_template_error_names_the_config_line_and_field(helm_dir: Path, bad: str, says: str) -> None:
    text = HELM_STYLE.replace('{{ template "slack.myorg.text" . }}', bad.replace("'", "''"))
    with pytest.raises(SourceError) as err:
        load_notify_config(text, str(helm_dir / "alertmanager.yml"))
    assert err.value.line == 22 and err.value.field == "receivers.1.slack_configs.0.text"
    assert says in str(err.value)


def test_a_multi_line_field_says_which_line_of_the_template(tmp_path: Path) -> None:
    text = ("route: {receiver: r}\nreceivers:\n  - name: r\n    pagerduty_configs:\n      - routing_key: k\n"
            "        details:\n          firing: |\n            {{ range .Alerts }}\n            {{ .Nope | x }}\n"
            "            {{ end }}\n")
    with pytest.raises(SourceError) as err:
        load_notify_config(text, "am.yml")
    assert err.value.field == "receivers.0.pagerduty_configs.0.details.firing" and err.value.line == 7
    assert "(line 2 of the template)" in str(err.value)


def test_email_headers_html_and_to_are_templates_checked_at_load() -> None:
    head = "route: {receiver: r}\nreceivers:\n  - name: r\n    email_configs:\n      - to: '{{ .Nope }}'\n"
    with pytest.raises(SourceError) as err:
        load_notify_config(head + "        smarthost: 'h:25'\n        from: a@b.c\n", "am.yml")
    assert err.value.field == "receivers.0.email_configs.0.to" and err.value.line == 5


def test_email_renders_the_default_subject_and_an_escaped_html_body() -> None:
    cfg = load_notify_config("route: {receiver: r}\nreceivers:\n  - name: r\n    email_configs:\n"
                             "      - {to: a@b.c, from: x@y.z, smarthost: 'h:25', headers: {X-Pods: "
                             "'{{ range .Alerts }}{{ .Labels.pod }},{{ end }}'}}\n")
    n = notification("<api>", "b&c")
    msg = build_message(cfg.receivers["r"].email_configs[0], cfg.global_, n, cfg.notify_templates)
    assert msg["Subject"] == "[FIRING:2] web (PodCrash critical)" and msg["X-Pods"] == "<api>,b&c,"
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
    assert "pod = &lt;api&gt;" in html and "pod = b&amp;c" in html and "<api>" not in html


def test_a_template_that_fails_on_the_data_fails_the_delivery_not_retried() -> None:
    cfg = load_notify_config("route: {receiver: r}\nreceivers:\n  - name: r\n    slack_configs:\n"
                             "      - {api_url: 'http://127.0.0.1:9/', text: '{{ (index .Alerts 5).Status }}'}\n")
    channel = SlackChannel("slack[0]", cfg.receivers["r"].slack_configs[0], cfg.global_, None,  # type: ignore[arg-type]
                           cfg.notify_templates)
    with pytest.raises(DeliveryError) as err:
        asyncio.run(channel.send(notification("a")))
    assert not err.value.retryable and "template" in str(err.value) and "out of range" in str(err.value)


def test_notify_check_reports_template_errors(helm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(helm_dir / "alertmanager.yml")
    assert main(["notify", "check", path]) == 0
    assert " - 1 template files\n" in capsys.readouterr().out
    (helm_dir / "templates" / "bad.tmpl").write_text('\n{{ define "x" }}{{ range . }}{{ end }}\n')
    assert main(["notify", "check", path]) == 1
    out = capsys.readouterr().out
    assert f"Checking '{path}'  FAILED: {helm_dir / 'templates' / 'bad.tmpl'}:2: " in out
    assert "in definition of 'x'" in out


def test_a_later_file_redefines_a_name_an_earlier_one_defined(tmp_path: Path) -> None:
    (tmp_path / "a.tmpl").write_text('{{ define "t" }}a{{ end }}')
    (tmp_path / "b.tmpl").write_text('{{ define "t" }}b{{ end }}')
    data = data_from_json({"status": "firing"}, datetime.now(UTC))
    assert load_templates([str(tmp_path / "a.tmpl"), str(tmp_path / "b.tmpl")]).render('{{ template "t" . }}',
                                                                                          data) == "b"
    (tmp_path / "c.tmpl").write_text('{{ define "t" }}a{{ end }}{{ define "t" }}b{{ end }}')
    with pytest.raises(TemplateFileError) as err:
        load_templates([str(tmp_path / "c.tmpl")])
    assert "multiple definition of template 't'" in str(err.value) and err.value.line == 1


ALERT = {"status": "firing", "labels": {"alertname": "A", "zone": "eu"}, "annotations": {},
         "startsAt": "2024-03-31T00:30:00.25Z", "endsAt": "0001-01-01T00:00:00Z"}


@pytest.mark.parametrize(("text", "out"), [
    # Documented in Alertmanager's "Notification template reference" (0.27+: date, tz, since,
    # humanizeDuration); the values follow Go's time package.
    ('{{ (index .Alerts 0).StartsAt | date "2006-01-02 15:04:05.000 MST" }}', "2024-03-31 00:30:00.250 UTC"),
    ('{{ (index .Alerts 0).StartsAt | tz "Europe/Paris" | date "Mon Jan _2 3:04PM -07:00" }}',
     "Sun Mar 31 1:30AM +01:00"),
    ('{{ (index .Alerts 0).StartsAt | tz "Europe/Paris" }}', "2024-03-31 01:30:00.25 +0100 CET"),
    ("{{ since (index .Alerts 0).StartsAt }}", "1h29m59.75s"),
    ("{{ since (index .Alerts 0).StartsAt | humanizeDuration }}", "1h 29m 59s"),
    ("{{ humanizeDuration 90061 }}", "1d 1h 1m 1s"),
    ("{{ (index .Alerts 0).StartsAt.Unix }} {{ (index .Alerts 0).EndsAt.IsZero }}", "1711845000 true"),
    ('{{ title "hELLO wORLD" }} {{ title "AA" }} {{ toLower "ABC" }} {{ trimSpace "  x  " }}', "Hello World Aa abc x"),
    ('{{ join "+" (stringSlice "a" "b") }} {{ match "^e" .CommonLabels.zone }}', "a+b true"),
    ('{{ reReplaceAll "(e)(u)" "$2$1" "eu-west" }}', "ue-west"),
    ("{{ .CommonLabels.SortedPairs.Names }} {{ .CommonLabels.Remove (stringSlice \"zone\") }}",
     "[alertname zone] map[alertname:A]"),
    ("{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}", "alertname=A;zone=eu;"),
])
def test_alertmanager_template_functions(text: str, out: str) -> None:
    data = data_from_json({"status": "firing", "alerts": [ALERT], "commonLabels": ALERT["labels"]},
                          now=datetime(2024, 3, 31, 2, 0, tzinfo=UTC))
    default_templates().check(text)
    assert default_templates().render(text, data) == out


def test_tz_refuses_an_unknown_zone() -> None:
    with pytest.raises(TemplateError, match="unknown time zone"):
        default_templates().render('{{ (index .Alerts 0).StartsAt | tz "Mars/Base" }}',
                                   data_from_json({"alerts": [ALERT]}, datetime.now(UTC)))


def test_every_default_name_the_brief_lists_is_defined() -> None:
    names = ["__subject", "__description", "__text_alert_list", "msteams.default.title", "msteams.default.summary",
             "msteams.default.text", "email.default.subject", "email.default.html", "telegram.default.message",
             "discord.default.title", "discord.default.message", "webex.default.message", "sns.default.subject",
             "sns.default.message", "pushover.default.title", "pushover.default.message", "pushover.default.url",
             "victorops.default.state_message", "wechat.default.message", "opsgenie.default.source"]
    for name in names:
        default_templates().check(f'{{{{ template "{name}" . }}}}')
    assert default_templates().files == ()  # built in, not read from a templates: file


def test_pagerduty_details_are_alertmanagers_defaults_plus_the_configs() -> None:
    cfg = load_notify_config("route: {receiver: r}\nreceivers:\n  - name: r\n    pagerduty_configs:\n"
                             "      - {routing_key: k, details: {pods: '{{ len .Alerts }} pods', num_firing: x}}\n")
    event = pagerduty_event(cfg.receivers["r"].pagerduty_configs[0], notification("a"), cfg.notify_templates)
    details = event["payload"]["custom_details"]
    assert details["pods"] == "1 pods" and details["num_firing"] == "x" and details["num_resolved"] == "0"
    assert details["firing"].startswith("Labels:\n - alertname = PodCrash\n") and details["resolved"] == ""
    assert event["payload"]["summary"] == "[FIRING:1] web (PodCrash a critical)"


def test_the_other_kinds_default_fields_name_defined_templates() -> None:
    from watchkeeper.core.notify.default_templates import DEFAULT_FIELDS

    for fields in DEFAULT_FIELDS.values():
        for text in fields.values():
            default_templates().check(text)
    data = data_from_json({"status": "firing", "receiver": "r", "externalURL": "http://am",
                           "groupLabels": {"alertname": "A"}, "commonLabels": {"alertname": "A"}}, datetime.now(UTC))
    assert default_templates().render(DEFAULT_FIELDS["opsgenie"]["source"], data) == "http://am/#/alerts?receiver=r"
    assert default_templates().render(DEFAULT_FIELDS["msteams"]["title"], data) == "[FIRING:0] A "


def test_the_prometheus_community_chart_default_shape_loads(tmp_path: Path) -> None:
    """The alertmanager chart's default: `global: {}`, one bare receiver, templates from an absolute glob."""
    path = tmp_path / "alertmanager.yml"
    path.write_text("global: {}\nreceivers:\n  - name: default-receiver\nroute:\n  group_wait: 10s\n"
                    "  group_interval: 5m\n  receiver: default-receiver\n  repeat_interval: 3h\n"
                    f"templates:\n  - '{tmp_path}/*.tmpl'\n")
    assert load_notify_config_file(str(path)).templates == []
    (tmp_path / "extra.tmpl").write_text('{{ define "x" }}{{ .Receiver }}{{ end }}')
    cfg = load_notify_config_file(str(path))
    assert cfg.templates == [str(tmp_path / "extra.tmpl")]
    data = data_from_json({"receiver": "r"}, datetime.now(UTC))
    assert cfg.notify_templates.render('{{ template "x" . }}', data) == "r"
