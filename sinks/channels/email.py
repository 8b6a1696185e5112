"""Email over SMTP (aiosmtplib): a multipart message with a plain-text and an HTML part, subject in
Alertmanager's default form `[FIRING:2] HighCPU (web prod)`."""

from __future__ import annotations

import html
from email.message import EmailMessage

import aiosmtplib

from core.notify.notification import Notification
from core.notify.receiver_configs import EmailConfig, GlobalConfig
from core.notify.text_template import render_template
from sinks.channels.base import DeliveryError


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


def html_body(n: Notification) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(a.state)}</td><td>{html.escape(a.rule)}</td><td>"
        + "<br>".join(html.escape(f"{k}={v}") for k, v in sorted(a.labels.items()))
        + "</td><td>" + "<br>".join(html.escape(f"{k}: {v}") for k, v in sorted(a.annotations.items()))
        + "</td></tr>" for a in n.alerts)
    return (f"<html><body><h2>{html.escape(subject(n))}</h2><table border=\"1\" cellpadding=\"4\">"
            f"<tr><th>state</th><th>alert</th><th>labels</th><th>annotations</th></tr>{rows}</table></body></html>")


def build_message(cfg: EmailConfig, global_cfg: GlobalConfig, n: Notification) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(n)
    msg["From"] = cfg.from_ or global_cfg.smtp_from or "watchkeeper@localhost"
    msg["To"] = cfg.to
    for k, v in cfg.headers.items():
        if k.lower() in ("subject", "from", "to"):
            del msg[k]
        msg[k] = render_template(v, n.template_data())
    msg.set_content(render_template(cfg.text, n.template_data()) if cfg.text else plain_body(n))
    msg.add_alternative(render_template(cfg.html, n.template_data()) if cfg.html else html_body(n), subtype="html")
    return msg


class EmailChannel:
    def __init__(self, integration: str, cfg: EmailConfig, global_cfg: GlobalConfig) -> None:
        self.integration, self.cfg, self.global_cfg = integration, cfg, global_cfg
        smarthost = cfg.smarthost or global_cfg.smtp_smarthost
        host, _, port = smarthost.rpartition(":")
        self.host, self.port = host or smarthost, int(port) if port.isdigit() else 25
        self.require_tls = cfg.require_tls if cfg.require_tls is not None else global_cfg.smtp_require_tls

    async def send(self, n: Notification) -> None:
        if not self.host:
            raise DeliveryError("no SMTP smarthost (set smarthost or global.smtp_smarthost)", False)
        msg = build_message(self.cfg, self.global_cfg, n)
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
