"""SMS for critical alerts, the pure part: the `sms_configs` receiver kind (a Watchkeeper extension beside
Alertmanager's receiver kinds), E.164 validation at load, the text made for a phone, and the rate limiter.

A page is read on a lock screen: one message per alert group, at most one SMS long (160 GSM-7 characters,
70 when a character outside GSM-7 forces UCS-2), long groups summarised as "+7 more" and never split into
a dozen parts. A flapping alert must not send hundreds of messages, so `SmsLimiter` decides, with the time
passed in, what goes out and what is held back (and says why, for the `notifications` table)."""

from __future__ import annotations

import base64
import json
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.templates import NotifyTemplates, default_templates, notification_data
from watchkeeper.core.notify.text_template import check_template, render_template
from watchkeeper.core.secrets import is_secret_name
from watchkeeper.core.slo.go_format import parse_prom_duration

# ITU-T E.164: "+", a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# An alphanumeric sender ID (Twilio, SNS): 1-11 letters, digits or spaces, at least one letter.
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
# GSM 03.38: the default alphabet, and the extension table whose characters take two septets.
GSM7_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
              "abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = "^{}\\[~]|€\f"
_GSM7 = frozenset(GSM7_BASIC)
_GSM7_EXT = frozenset(GSM7_EXTENSION)
GSM7_LIMIT, UCS2_LIMIT = 160, 70
DEFAULT_MAX_PER_HOUR = 20
# Labels that say where an alert is, in the order a reader on call wants them.
TELLING_LABELS = ("service", "instance", "host", "job", "namespace", "pod", "device", "mountpoint", "cluster",
                  "env")
_NOT_TELLING = frozenset({"alertname", "severity", "priority"})
# Extra fields the generic provider's body template takes, beside the notification texts' fields.
_BODY_FIELD = re.compile(r"{{-?\s*\.(To|Text)\s*-?}}")


def check_e164(number: str) -> str:
    if not _E164.match(number):
        raise ValueError(f"{number!r} is not an E.164 phone number: write + then the country code and the "
                         "number, digits only, e.g. +14155550100")
    return number


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TwilioProvider(_Strict):
    """Twilio's Messages API: POST form `To`, `From` or `MessagingServiceSid`, `Body`, basic auth."""

    account_sid: str = Field(min_length=1)
    auth_token: str = Field(min_length=1)
    from_: str = Field(default="", alias="from")
    messaging_service_sid: str = ""
    api_url: str = "https://api.twilio.com"  # overridable for tests and Twilio's regional edges

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioProvider:
        if bool(self.from_) == bool(self.messaging_service_sid):
            raise ValueError("set exactly one of from (a number or sender ID) and messaging_service_sid")
        if self.from_ and not (_E164.match(self.from_) or _SENDER_ID.match(self.from_)):
            raise ValueError(f"from {self.from_!r} is neither an E.164 number (+14155550100) nor an alphanumeric "
                             "sender ID (1-11 letters and digits)")
        return self

    def messages_url(self) -> str:
        return f"{self.api_url.rstrip('/')}/2010-04-01/Accounts/{quote_plus(self.account_sid)}/Messages.json"

    def basic_auth(self) -> str:
        return "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()


class SnsProvider(_Strict):
    """Amazon SNS `Publish` straight to a phone number (no topic), signed with SigV4 by botocore."""

    region: str = Field(min_length=1)
    access_key_id: str = Field(min_length=1)
    secret_access_key: str = Field(min_length=1)
    session_token: str = ""
    endpoint: str = ""  # default https://sns.<region>.amazonaws.com/; overridable for tests
    sms_type: Literal["Transactional", "Promotional"] = "Transactional"
    sender_id: str = ""

    @field_validator("sender_id")
    @classmethod
    def _sender(cls, v: str) -> str:
        if v and not _SENDER_ID.match(v):
            raise ValueError(f"sender_id {v!r} must be 1-11 letters and digits with at least one letter")
        return v

    def url(self) -> str:
        return self.endpoint or f"https://sns.{self.region}.amazonaws.com/"

    def publish_form(self, to: str, text: str) -> dict[str, str]:
        """The Query API form of `Publish` with the SMS attributes, as the AWS SDKs send it."""
        form = {"Action": "Publish", "Version": "2010-03-31", "PhoneNumber": to, "Message": text}
        attrs = [("AWS.SNS.SMS.SMSType", self.sms_type)] + ([("AWS.SNS.SMS.SenderID", self.sender_id)]
                                                            if self.sender_id else [])
        for i, (name, value) in enumerate(attrs, 1):
            form[f"MessageAttributes.entry.{i}.Name"] = name
            form[f"MessageAttributes.entry.{i}.Value.DataType"] = "String"
            form[f"MessageAttributes.entry.{i}.Value.StringValue"] = value
        return form


class HttpProvider(_Strict):
    """Any SMS gateway with an HTTP API: the body is a template taking `{{ .To }}`, `{{ .Text }}` and the
    notification fields; values are escaped for the content type (JSON string or form-encoded)."""

    url: str = Field(min_length=1)
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    content_type: str = "application/json"
    body: str = '{"to": "{{ .To }}", "text": "{{ .Text }}"}'

    @field_validator("body")
    @classmethod
    def _body(cls, v: str) -> str:
        check_template(_BODY_FIELD.sub("", v))
        return v

    def render_body(self, to: str, text: str, data: Mapping[str, Any]) -> bytes:
        ct = self.content_type.split(";")[0].strip().lower()
        if ct.endswith("json"):
            esc: Callable[[str], str] = lambda s: json.dumps(s, ensure_ascii=False)[1:-1]  # noqa: E731
        elif ct == "application/x-www-form-urlencoded":
            esc = quote_plus
        else:
            esc = str
        fields = {"To": to, "Text": text}
        out = _BODY_FIELD.sub(lambda m: esc(fields[m.group(1)]), self.body)
        escaped = {k: ({kk: esc(str(vv)) for kk, vv in v.items()} if isinstance(v, dict) else
                       v if k == "Alerts" else esc(str(v))) for k, v in data.items()}
        return render_template(out, escaped).encode()


class SmsConfig(_Strict):
    """One phone: one `sms_configs` entry is one number, so each has its own outbox entry, retries and
    record (a retry never re-sends to numbers that already got the message)."""

    to: str
    twilio: TwilioProvider | None = None
    sns: SnsProvider | None = None
    http: HttpProvider | None = None
    text: str = ""  # empty: the default text (status, priority, alert name, telling labels, +N more, link)
    send_resolved: bool = False  # a page wakes someone; "resolved" can wait for email and chat
    max_per_hour: int = Field(default=DEFAULT_MAX_PER_HOUR, ge=1)
    # At most one firing SMS per group in this long; empty: the route's repeat_interval.
    per_group_interval: float | None = Field(default=None, gt=0)

    @field_validator("to")
    @classmethod
    def _e164(cls, v: str) -> str:
        return check_e164(v)

    @field_validator("per_group_interval", mode="before")
    @classmethod
    def _d(cls, v: Any) -> Any:
        if v is None or (isinstance(v, int | float) and not isinstance(v, bool)):
            return v
        return parse_prom_duration(str(v))

    @model_validator(mode="after")
    def _one_provider(self) -> SmsConfig:
        given = [k for k in ("twilio", "sns", "http") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one provider: twilio, sns or http" + (f" (got {', '.join(given)})"
                                                                                  if given else ""))
        return self

    @property
    def provider(self) -> str:
        return "twilio" if self.twilio else "sns" if self.sns else "http"


def sms_secrets(cfg: SmsConfig) -> list[str]:
    """Secrets that the generic walk over field names misses: Twilio's basic-auth header as sent, and the
    generic provider's credential headers (`Authorization` is not a secret-ish *name*, but its value is)."""
    out = []
    if cfg.twilio:
        out += [cfg.twilio.basic_auth(), cfg.twilio.basic_auth().split(" ", 1)[1]]
    if cfg.http:
        for k, v in cfg.http.headers.items():
            if k.lower() in ("authorization", "proxy-authorization", "cookie") or is_secret_name(k):
                out.append(v)
                out += v.split(" ", 1)[1:]  # the credential without its scheme, as some errors print it
    return out


# The text -----------------------------------------------------------------------------------------------

def sms_length(text: str) -> tuple[int, int]:
    """(length, limit) of one SMS: GSM-7 characters (extension ones count twice) against 160, or, when any
    character is outside GSM-7, UTF-16 code units against 70."""
    if all(c in _GSM7 or c in _GSM7_EXT for c in text):
        return len(text) + sum(c in _GSM7_EXT for c in text), GSM7_LIMIT
    return len(text.encode("utf-16-le")) // 2, UCS2_LIMIT


def fits(text: str) -> bool:
    n, limit = sms_length(text)
    return n <= limit


def truncate(text: str) -> str:
    """`text` cut to one SMS, ending with "..." when cut."""
    if fits(text):
        return text
    cut = text
    while cut and not fits(cut.rstrip() + "..."):
        cut = cut[:-1]
    return cut.rstrip() + "..."


def _telling_labels(n: Notification) -> list[str]:
    first = (n.firing() or n.alerts)[0]
    seen: set[str] = set(_NOT_TELLING)
    out: list[str] = []
    for source in (n.group_labels, {k: first.labels[k] for k in TELLING_LABELS if k in first.labels},
                   dict(sorted(first.labels.items()))):
        for k, v in source.items():
            if k not in seen:
                seen.add(k)
                out.append(f"{k}={v}")
    return out


def default_text(n: Notification) -> str:
    """`FIRING P1 DiskFull service=db instance=a: Disk 95% full +7 more http://wk:8080` cut to one SMS:
    the head, count and link are kept; labels and the summary go in while they fit."""
    firing = n.firing()
    first = (firing or n.alerts)[0]
    common = n.common_labels
    prio = common.get("priority") or common.get("severity") or first.labels.get("priority", "")
    name = common.get("alertname") or first.labels.get("alertname") or first.rule
    head = " ".join(p for p in (n.status.upper(), prio, name) if p)
    shown = len(firing) if firing else len(n.alerts)
    more = f"+{shown - 1} more" if shown > 1 else ""
    link = n.external_url

    def build(labels: list[str], summary: str, link: str, head: str = head) -> str:
        text = " ".join([head, *labels])
        if summary:
            text += f": {summary}"
        return " ".join(p for p in (text, more, link) if p)

    if not fits(build([], "", link)):
        link = ""
    if not fits(build([], "", link)):  # a very long alert name: cut it, keep the count
        if not more:
            return truncate(head)
        cut = head
        while cut and not fits(f"{cut.rstrip()}... {more}"):
            cut = cut[:-1]
        return f"{cut.rstrip()}... {more}"
    labels: list[str] = []
    for label in _telling_labels(n):
        if fits(build([*labels, label], "", link)):
            labels.append(label)
    summary = first.annotations.get("summary", "")
    if summary and fits(build(labels, summary, link)):
        return build(labels, summary, link)
    return build(labels, "", link)


def sms_text(cfg: SmsConfig, n: Notification, templates: NotifyTemplates | None = None) -> str:
    """`text` is an Alertmanager notification template (core/notify/templates.py), checked at load."""
    if not cfg.text:
        return default_text(n)
    return truncate((templates or default_templates()).render(cfg.text, notification_data(n)))


# The rate limit -----------------------------------------------------------------------------------------

@dataclass
class _GroupState:
    told: str = ""  # what the phone was last told of this group: "firing", "resolved" or nothing
    firing_at: float | None = None
    resolved_at: float | None = None


@dataclass
class Reservation:
    """A slot taken by an SMS about to be sent; `SmsLimiter.release` gives it back if the send fails."""

    group_key: str
    sent_at: float
    before: _GroupState


@dataclass
class SmsLimiter:
    """What one phone is sent, with time passed in. Per group: a firing SMS when the phone does not know the
    group fires, else at most one reminder per `per_group_interval` (the route's repeat_interval); a
    resolved SMS only after a firing one, at most one per interval. So a group flapping for an interval
    costs at most three messages (firing, resolved, firing), and the phone is wrong only on the safe side
    (it may believe the group fires when it has resolved, never the reverse). Per phone: at most
    `max_per_hour` in any hour; only this cap can hold back news the phone lacks (a group firing again
    after its resolved SMS), which is why it is high (20) and counted per phone. A held SMS is not sent
    later: the next flush of the group (repeat_interval) brings the news, and email and chat carry
    everything meanwhile."""

    max_per_hour: int = DEFAULT_MAX_PER_HOUR
    groups: dict[str, _GroupState] = field(default_factory=dict)
    sent: deque[float] = field(default_factory=deque)

    def take(self, group_key: str, status: str, interval: float, now: float) -> Reservation | str:
        """A Reservation if an SMS for `group_key` in `status` may go out at `now`, else why it is held."""
        g = self.groups.setdefault(group_key, _GroupState())
        if status == "firing":
            if g.told == "firing" and g.firing_at is not None and now - g.firing_at < interval:
                return (f"held: this phone was told the group fires {_ago(now - g.firing_at)} ago; at most one "
                        f"firing SMS per group per {_ago(interval)}")
        elif g.told != "firing":
            return "held: the phone was not told this group fires, so its resolution is no news"
        elif g.resolved_at is not None and now - g.resolved_at < interval:
            return (f"held: a resolved SMS for this group went out {_ago(now - g.resolved_at)} ago; at most one "
                    f"per {_ago(interval)}")
        while self.sent and self.sent[0] <= now - 3600:
            self.sent.popleft()
        if len(self.sent) >= self.max_per_hour:
            return f"held: {len(self.sent)} SMS to this phone in the last hour (max_per_hour {self.max_per_hour})"
        before = _GroupState(g.told, g.firing_at, g.resolved_at)
        g.told = status
        if status == "firing":
            g.firing_at = now
        else:
            g.resolved_at = now
        self.sent.append(now)
        return Reservation(group_key, now, before)

    def release(self, r: Reservation) -> None:
        """The SMS of `r` did not go out: forget it, so a retry is judged as if it never was tried."""
        self.groups[r.group_key] = r.before
        if r.sent_at in self.sent:
            self.sent.remove(r.sent_at)


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600 and s % 3600 == 0:
        return f"{s // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    return f"{s}s"
