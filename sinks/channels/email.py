"""Email over SMTP (aiosmtplib): a multipart message with a plain-text and an HTML part; subject and HTML
from Alertmanager's default templates (`email.default.subject`, `email.default.html`) unless configured."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import EmailConfig, GlobalConfig
from watchkeeper.core.notify.templates import NotifyTemplates, default_templates, notification_data
from watchkeeper.sinks.channels.base import DeliveryError, template_errors


def subject(n: Notification) -> str:
    head = f"[{n.status.upper()}:{len(n.firing())}]" if n.status == "firing" else "[RESOLVED]"
    values = " ".join(v for _, v in sorted(n.group_labels.items()))
    return f"{head} {values}".strip()


def plain_body(n: Notification) -> str:
    out = [subject(n), ""]
    for a in n.alerts:
        out.append(f"[{a.state}] {a.rule}")
        out += [f"  {k} = {v}" for k, v in sorted(a.labels.items())]
        out += [f"  {k}: {v}" for k, v in sorted(a.annotations.items())]
        out.append("")
    if n.external_url:
        out.append(n.external_url)
    return "\n".join(out)


def build_message(cfg: EmailConfig, global_cfg: GlobalConfig, n: Notification,
                  templates: NotifyTemplates | None = None) -> EmailMessage:
    """Headers (Subject default `email.default.subject`), `to`, `from`, `text` and `html` are templates, as
    in Alertmanager; `html` is escaped as html/template does."""
    tmpl = templates or default_templates()
    data = notification_data(n)
    headers = {"Subject": '{{ template "email.default.subject" . }}'}
    headers.update({k.title(): v for k, v in cfg.headers.items()})
    msg = EmailMessage()
    msg["Subject"] = tmpl.render(headers.pop("Subject"), data)
    msg["From"] = tmpl.render(headers.pop("From", cfg.from_ or global_cfg.smtp_from or "watchkeeper@localhost"), data)
    msg["To"] = tmpl.render(headers.pop("To", cfg.to), data)
    for k, v in headers.items():
        msg[k] = tmpl.render(v, data)
    msg.set_content(tmpl.render(cfg.text, data) if cfg.text else plain_body(n))
    if cfg.html:
        msg.add_alternative(tmpl.render(cfg.html, data, html_body=True), subtype="html")
    return msg


class EmailChannel:
    def __init__(self, integration: str, cfg: EmailConfig, global_cfg: GlobalConfig,
                 templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.global_cfg, self.templates = integration, cfg, global_cfg, templates
        smarthost = cfg.smarthost or global_cfg.smtp_smarthost
        host, _, port = smarthost.rpartition(":")
        self.host, self.port = host or smarthost, int(port) if port.isdigit() else 25
        self.require_tls = cfg.require_tls if cfg.require_tls is not None else global_cfg.smtp_require_tls

    async def send(self, n: Notification) -> None:
        if not self.host:
            raise DeliveryError("no SMTP smarthost (set smarthost or global.smtp_smarthost)", False)
        with template_errors():
            msg = build_message(self.cfg, self.global_cfg, n, self.templates)
        user = self.cfg.auth_username or self.global_cfg.smtp_auth_username
        password = self.cfg.auth_password or self.global_cfg.smtp_auth_password
        try:
            await aiosmtplib.send(msg, hostname=self.host, port=self.port, start_tls=self.require_tls or None,
                                  username=user or None, password=password or None, timeout=10,
                                  local_hostname=self.cfg.hello or self.global_cfg.smtp_hello)
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.code}: {exc.message}", exc.code >= 400 and exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"SMTP to {self.host}:{self.port}: {exc}", True) from None
