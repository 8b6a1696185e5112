"""Amazon SNS `Publish` through the AWS query API, signed with SigV4 (botocore's signer): to a topic
(`topic_arn`), a platform endpoint (`target_arn`) or a phone (`phone_number`), with the `subject`,
`message` and string `attributes`. Credentials from `sigv4` (access_key/secret_key, or `profile`), else
botocore's usual chain (environment, shared files); the region from `sigv4.region`, else the ARN's."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import aiohttp
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError

from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.receiver_configs import GlobalConfig
from watchkeeper.core.notify.receiver_kinds import SNSConfig
from watchkeeper.core.notify.templates import NotifyTemplates
from watchkeeper.plumbing.log_filters import KNOWN_SECRETS
from watchkeeper.sinks.channels.base import DeliveryError, http_request, template_errors
from watchkeeper.sinks.channels.texts import KindTexts, group_hash, truncate, truncate_bytes

FORM = "application/x-www-form-urlencoded; charset=utf-8"
MESSAGE_BYTES = 256 * 1024  # SNS's cap on a message
SMS_CHARACTERS = 1600  # and on a message to a phone
SUBJECT_LIMIT = 100
_CODE = re.compile(r"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
_ID = re.compile(r"<MessageId>([^<]*)</MessageId>")
# SNS answers some throttling with 400 and one of these codes; the AWS SDKs retry them, so do we.
_THROTTLED = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded"})


def region_of(cfg: SNSConfig) -> str:
    sigv4 = cfg.get("sigv4", {})
    if sigv4.get("region"):
        return str(sigv4["region"])
    for key in ("topic_arn", "target_arn"):
        parts = str(cfg.get(key, "")).split(":")
        if len(parts) > 3 and parts[0] == "arn" and parts[3]:
            return parts[3]
    session = botocore.session.get_session()
    return str(session.get_config_variable("region") or "us-east-1")


def publish_form(cfg: SNSConfig, n: Notification, notification_id: str,
                 templates: NotifyTemplates | None = None) -> dict[str, str]:
    text = KindTexts("sns", cfg, n, templates)
    form = {"Action": "Publish", "Version": "2010-03-31"}
    message = text("message")
    if phone := cfg.get("phone_number"):
        form["PhoneNumber"] = text.render(phone)
        form["Message"] = truncate(message, SMS_CHARACTERS)
    else:
        if topic := cfg.get("topic_arn"):
            form["TopicArn"] = text.render(topic)
            if form["TopicArn"].endswith(".fifo"):  # a FIFO topic needs a group and a deduplication id
                form["MessageGroupId"] = group_hash(n)
                form["MessageDeduplicationId"] = notification_id
        else:
            form["TargetArn"] = text.render(cfg.get("target_arn"))
        form["Message"] = truncate_bytes(message, MESSAGE_BYTES)
        form["Subject"] = truncate(" ".join(text("subject").split()), SUBJECT_LIMIT)
    for i, (k, v) in enumerate(sorted(cfg.get("attributes", {}).items()), 1):
        form[f"MessageAttributes.entry.{i}.Name"] = str(k)
        form[f"MessageAttributes.entry.{i}.Value.DataType"] = "String"
        form[f"MessageAttributes.entry.{i}.Value.StringValue"] = text.render(v)
    return form


def credentials(cfg: SNSConfig) -> Credentials:
    sigv4 = cfg.get("sigv4", {})
    if sigv4.get("role_arn"):
        raise DeliveryError("sns: sigv4.role_arn (assuming a role) is not supported; give access_key/secret_key, "
                            "a profile or the AWS_* environment", False)
    if sigv4.get("access_key"):
        return Credentials(str(sigv4["access_key"]), str(sigv4["secret_key"]))
    try:
        session = botocore.session.Session(profile=sigv4.get("profile") or None)
        found = session.get_credentials()
    except BotoCoreError as exc:
        raise DeliveryError(f"sns: no AWS credentials: {exc}", False) from None
    if found is None:
        raise DeliveryError("sns: no AWS credentials (set sigv4.access_key/secret_key, sigv4.profile or "
                            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)", False)
    frozen = found.get_frozen_credentials()
    for secret in (frozen.secret_key, frozen.token):
        if secret:
            KNOWN_SECRETS.add(secret)
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def signed_headers(url: str, body: bytes, creds: Credentials, region: str) -> dict[str, str]:
    req = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": FORM})
    SigV4Auth(creds, "sns", region).add_auth(req)
    return dict(req.headers.items())


class SNSChannel:
    def __init__(self, integration: str, cfg: SNSConfig, global_cfg: GlobalConfig,
                 session: aiohttp.ClientSession, templates: NotifyTemplates | None = None) -> None:
        self.integration, self.cfg, self.session, self.templates = integration, cfg, session, templates
        self.http = cfg.http() or global_cfg.http_config
        self.region = region_of(cfg)
        self.url = cfg.get("api_url") or f"https://sns.{self.region}.amazonaws.com/"

    async def send(self, n: Notification) -> str:
        with template_errors():
            form = publish_form(self.cfg, n, n.notification_id, self.templates)
        body = urlencode(form).encode()
        headers = signed_headers(self.url, body, credentials(self.cfg), self.region)
        try:
            _, answer = await http_request(self.session, "POST", self.url, body, headers, http=self.http)
        except DeliveryError as exc:
            raise _with_aws_code(exc) from None
        found = _ID.search(answer)
        return f"MessageId {found.group(1)}" if found else ""


def _with_aws_code(exc: DeliveryError) -> DeliveryError:
    """The AWS error code and message instead of the raw XML; throttling codes (sent with 400) retry."""
    message = str(exc)
    code, said = _CODE.search(message), _MESSAGE.search(message)
    if code is None:
        return exc
    head = message.split(": <", 1)[0]
    retryable = exc.retryable or code.group(1) in _THROTTLED
    return DeliveryError(f"{head}: {code.group(1)}: {said.group(1) if said else ''}", retryable, exc.retry_after)
