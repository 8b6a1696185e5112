"""Alertmanager's default template names, defined by Watchkeeper: written from Alertmanager's
documentation ("Notification template reference", each integration's defaults in "Configuration") and
from what amtool 0.25 renders for them, so that each name renders the same text as Alertmanager's for
the same data (tests/unit/test_notify_templates_amtool.py compares them with the real amtool). Receiver
fields left out of a configuration default to these names, as in Alertmanager; a `templates:` file may
redefine any of them.

Layout of the texts the chat and paging integrations share:
- the subject: `[FIRING:2] <group label values> (<other common label values>)`;
- the alert list: per alert `Labels:`, ` - name = value` lines, `Annotations:`, the same, `Source: URL`;
- the "compact" body (OpsGenie, VictorOps, WeChat): common annotation values, then the firing and the
  resolved lists under their headings, a newline between the two places whether or not a list is
  there; the "spaced" body (Pushover, SNS, Telegram, Discord, Webex) puts a blank line around each list.
`email.default.html` is Watchkeeper's own HTML (its own markup and style); it shows the same texts and
links, in the same order, as Alertmanager's default email."""

DEFAULT_TEMPLATES = r"""
{{- /* ---- shared pieces ---- */ -}}

{{ define "__alertmanager" }}Alertmanager{{ end }}

{{ define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ urlquery .Receiver }}{{ end }}

{{ define "__subject" -}}
  [{{ toUpper .Status }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}]
  {{- print " " (join " " .GroupLabels.Values) " " -}}
  {{ if gt (len .CommonLabels) (len .GroupLabels) -}}
    ({{ join " " (.CommonLabels.Remove .GroupLabels.Names).Values }})
  {{- end }}
{{- end }}

{{ define "__description" }}{{ end }}

{{ define "wk.pairs" }}{{ range .SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}{{ end }}

{{ define "__text_alert_list" -}}
  {{ range . -}}
    Labels:{{ "\n" }}{{ template "wk.pairs" .Labels -}}
    Annotations:{{ "\n" }}{{ template "wk.pairs" .Annotations -}}
    Source: {{ .GeneratorURL }}{{ "\n" }}
  {{- end }}
{{- end }}

{{ define "wk.annotation_values" }}{{ join " " .CommonAnnotations.Values }}{{ end }}

{{ define "wk.body.compact" -}}
  {{ with .Alerts.Firing }}Alerts Firing:{{ "\n" }}{{ template "__text_alert_list" . }}{{ end -}}
  {{ "\n" }}
  {{- with .Alerts.Resolved }}Alerts Resolved:{{ "\n" }}{{ template "__text_alert_list" . }}{{ end -}}
{{ end }}

{{ define "wk.body.spaced" -}}
  {{ "\n" }}
  {{- with .Alerts.Firing }}{{ "\n" }}Alerts Firing:{{ "\n" }}
    {{- template "__text_alert_list" . }}{{ "\n" }}{{ end -}}
  {{ "\n" }}
  {{- with .Alerts.Resolved }}{{ "\n" }}Alerts Resolved:{{ "\n" }}
    {{- template "__text_alert_list" . }}{{ "\n" }}{{ end -}}
  {{ "\n" }}
{{- end }}

{{- /* ---- Slack ---- */ -}}

{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "slack.default.fallback" -}}
  {{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}
{{- end }}
{{ define "slack.default.callbackid" }}{{ end }}
{{ define "slack.default.pretext" }}{{ end }}
{{ define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "slack.default.iconemoji" }}{{ end }}
{{ define "slack.default.iconurl" }}{{ end }}
{{ define "slack.default.text" }}{{ end }}
{{ define "slack.default.footer" }}{{ end }}

{{- /* ---- PagerDuty ---- */ -}}

{{ define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{ define "pagerduty.default.client" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}

{{- /* ---- OpsGenie, VictorOps, WeChat ---- */ -}}

{{ define "opsgenie.default.message" }}{{ template "__subject" . }}{{ end }}
{{ define "opsgenie.default.description" -}}
  {{ template "wk.annotation_values" . }}{{ "\n" }}{{ template "wk.body.compact" . }}
{{- end }}
{{ define "opsgenie.default.source" }}{{ template "__alertmanagerURL" . }}{{ end }}

{{ define "victorops.default.state_message" }}{{ template "opsgenie.default.description" . }}{{ end }}
{{ define "victorops.default.entity_display_name" }}{{ template "__subject" . }}{{ end }}
{{ define "victorops.default.monitoring_tool" }}{{ template "__alertmanager" . }}{{ end }}

{{ define "wechat.default.message" -}}
  {{ template "__subject" . }}{{ "\n" }}{{ template "opsgenie.default.description" . -}}
  {{ "\n" }}AlertmanagerUrl:{{ "\n" }}{{ template "__alertmanagerURL" . }}
{{- end }}
{{ define "wechat.default.to_user" }}{{ end }}
{{ define "wechat.default.to_party" }}{{ end }}
{{ define "wechat.default.to_tag" }}{{ end }}
{{ define "wechat.default.agent_id" }}{{ end }}

{{- /* ---- Pushover, SNS, Telegram, Discord, Webex ---- */ -}}

{{ define "pushover.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "pushover.default.message" }}{{ template "wk.annotation_values" . }}{{ template "wk.body.spaced" . }}{{ end }}
{{ define "pushover.default.url" }}{{ template "__alertmanagerURL" . }}{{ end }}

{{ define "sns.default.subject" }}{{ template "__subject" . }}{{ end }}
{{ define "sns.default.message" }}{{ template "pushover.default.message" . }}{{ end }}

{{ define "telegram.default.message" }}{{ template "wk.body.spaced" . }}{{ end }}

{{ define "discord.default.content" }}{{ end }}
{{ define "discord.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "discord.default.message" }}{{ template "wk.body.spaced" . }}{{ end }}

{{ define "webex.default.message" }}{{ template "pushover.default.message" . }}{{ end }}

{{- /* ---- Microsoft Teams (Alertmanager 0.26+; Markdown lists; msteamsv2 0.28+, the same texts) ---- */ -}}

{{ define "msteams.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "msteams.default.summary" }}{{ template "__subject" . }}{{ end }}
{{ define "wk.markdown_alert_list" -}}
  {{ range . }}{{ "\n" }}Labels:{{ "\n" -}}
    {{ range .Labels.SortedPairs }}  - {{ .Name }} = {{ .Value }}{{ "\n" }}{{ end -}}
    {{ "\n" }}Annotations:{{ "\n" -}}
    {{ range .Annotations.SortedPairs }}  - {{ .Name }} = {{ .Value }}{{ "\n" }}{{ end -}}
    {{ "\n" }}Source: {{ .GeneratorURL }}{{ "\n" }}
  {{- end }}{{ "\n" }}
{{- end }}
{{ define "msteams.default.text" -}}
  {{ "\n" }}
  {{- with .Alerts.Firing }}{{ "\n" }}# Alerts Firing:{{ "\n" }}
    {{- template "wk.markdown_alert_list" . }}{{ "\n" }}{{ end -}}
  {{ "\n" }}
  {{- with .Alerts.Resolved }}{{ "\n" }}# Alerts Resolved:{{ "\n" }}
    {{- template "wk.markdown_alert_list" . }}{{ "\n" }}{{ end -}}
  {{ "\n" }}
{{- end }}

{{ define "msteamsv2.default.title" }}{{ template "msteams.default.title" . }}{{ end }}
{{ define "msteamsv2.default.text" }}{{ template "msteams.default.text" . }}{{ end }}

{{- /* ---- Email ---- */ -}}

{{ define "email.default.subject" }}{{ template "__subject" . }}{{ end }}

{{ define "wk.email.alerts" -}}
  {{ range . -}}
  <tr><td class="alert">
    <b>Labels</b><br>
    {{ range .Labels.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}
    {{ if gt (len .Annotations) 0 }}<b>Annotations</b><br>
    {{ end }}{{ range .Annotations.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}
    <a href="{{ .GeneratorURL }}">Source</a><br>
  </td></tr>
  {{ end -}}
{{ end }}

{{ define "email.default.html" -}}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width">
<title>{{ template "__subject" . }}</title>
<style>
  body { margin: 0; background: #f3f4f6; font-family: "Helvetica Neue", Helvetica, Arial, sans-serif;
         font-size: 14px; color: #1f2937; }
  .frame { max-width: 640px; margin: 0 auto; padding: 24px 12px; }
  .card { width: 100%; background: #ffffff; border: 1px solid #d1d5db; border-radius: 4px;
          border-collapse: collapse; }
  .banner { padding: 18px; color: #ffffff; font-size: 16px; text-align: center; }
  .banner.firing { background: #c2410c; }
  .banner.resolved { background: #15803d; }
  .card td { padding: 10px 18px; vertical-align: top; }
  .button { display: inline-block; padding: 8px 16px; background: #1d4ed8; color: #ffffff;
            border-radius: 4px; text-decoration: none; font-weight: bold; }
  .section { font-size: 15px; }
  .alert { border-top: 1px solid #e5e7eb; line-height: 1.5; }
  .footer { padding: 16px; text-align: center; font-size: 12px; color: #6b7280; }
  .footer a { color: #6b7280; }
</style>
</head>
<body>
<div class="frame">
<table class="card">
  <tr><td class="banner {{ if eq .Status "firing" }}firing{{ else }}resolved{{ end }}">
    {{ len .Alerts }} alert{{ if gt (len .Alerts) 1 }}s{{ end }} for
    {{ range .GroupLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}
  </td></tr>
  <tr><td><a class="button" href="{{ template "__alertmanagerURL" . }}">
    View in {{ template "__alertmanager" . }}</a></td></tr>
  {{ with .Alerts.Firing -}}
  <tr><td class="section"><b>[{{ len . }}] Firing</b></td></tr>
  {{ template "wk.email.alerts" . }}
  {{- end }}
  {{ if and .Alerts.Firing .Alerts.Resolved }}<tr><td><hr></td></tr>{{ end }}
  {{ with .Alerts.Resolved -}}
  <tr><td class="section"><b>[{{ len . }}] Resolved</b></td></tr>
  {{ template "wk.email.alerts" . }}
  {{- end }}
</table>
<div class="footer"><a href="{{ .ExternalURL }}">Sent by {{ template "__alertmanager" . }}</a></div>
</div>
</body>
</html>
{{ end }}
"""


def _t(name: str) -> str:
    return f'{{{{ template "{name}" . }}}}'


# Each integration's template fields and their defaults, as Alertmanager's config defaults them: what a
# channel renders when the receiver leaves the field out (Slack, PagerDuty and email take theirs in
# core/notify/receiver_configs.py; these are the other kinds', read by sinks/channels/texts.py).
DEFAULT_FIELDS: dict[str, dict[str, str]] = {
    "opsgenie": {"message": _t("opsgenie.default.message"), "description": _t("opsgenie.default.description"),
                 "source": _t("opsgenie.default.source")},
    "victorops": {"state_message": _t("victorops.default.state_message"),
                  "entity_display_name": _t("victorops.default.entity_display_name"),
                  "monitoring_tool": _t("victorops.default.monitoring_tool"), "message_type": "CRITICAL"},
    "pushover": {"title": _t("pushover.default.title"), "message": _t("pushover.default.message"),
                 "url": _t("pushover.default.url"),
                 "priority": '{{ if eq .Status "firing" }}2{{ else }}0{{ end }}'},
    "sns": {"subject": _t("sns.default.subject"), "message": _t("sns.default.message")},
    "msteams": {"title": _t("msteams.default.title"), "summary": _t("msteams.default.summary"),
                "text": _t("msteams.default.text")},
    "msteamsv2": {"title": _t("msteamsv2.default.title"), "text": _t("msteamsv2.default.text")},
    "discord": {"title": _t("discord.default.title"), "message": _t("discord.default.message"),
                "content": _t("discord.default.content")},
    "telegram": {"message": _t("telegram.default.message")},
    "webex": {"message": _t("webex.default.message")},
    "wechat": {"message": _t("wechat.default.message"), "to_user": _t("wechat.default.to_user"),
               "to_party": _t("wechat.default.to_party"), "to_tag": _t("wechat.default.to_tag"),
               "agent_id": _t("wechat.default.agent_id")},
}
