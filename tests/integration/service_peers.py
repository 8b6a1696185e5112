"""Stand-ins for the hosted services Alertmanager's integrations call (Opsgenie, VictorOps, Pushover, SNS,
Teams, Discord, Telegram, Webex, WeChat), on one loopback server. Each route records the request and
checks it as the service's API documentation describes it (method, path, auth, required fields, length
limits), answering as the service does: its success body, or its error status and body when the request
breaks a rule. A test can queue failures (`fail_next`) to see retries and final errors."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import orjson
from aiohttp import web

from tests.integration.notify_peers import ServedApp
from watchkeeper.plumbing.broker import free_port

OPSGENIE_KEY = "og-key-0123456789"
VICTOROPS_KEY = "vo-key-0123456789"
PUSHOVER_TOKEN, PUSHOVER_USER = "azGDORePK8gMaC0QOYAMyEEuzJnyUi", "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
AWS_KEY, AWS_SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TELEGRAM_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
WEBEX_TOKEN = "webex-bot-token-0123456789"
WECHAT_CORP, WECHAT_SECRET = "ww0123456789", "wechat-app-secret-0123456789"
TEAMS_PATH = "/teams/webhookb2/0a1b2c3d-4e5f-6789-abcd-ef0123456789@0a1b2c3d/IncomingWebhook/abcdef0123456789"
TEAMS_V2_PATH = "/teamsv2/workflows/8f1e2d3c4b5a69788796a5b4c3d2e1f0/triggers/manual/paths/invoke"
DISCORD_PATH = "/discord/api/webhooks/112233445566778899/Xy9-TOKENtokenTOKEN0123456789abcdef"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def sigv4_problem(call: Call, secret: str, service: str) -> str:
    """Why `call`'s AWS Signature Version 4 is wrong, or "" when it is right: the signature recomputed
    as AWS's "Signature Version 4 signing process" documents it (canonical request, string to sign,
    derived signing key), independently of the signer under test."""
    auth = call.headers.get("Authorization", "")
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})", auth)
    if m is None:
        return f"malformed Authorization {auth!r}"
    key_id, day, region, svc, signed, signature = m.groups()
    if svc != service:
        return f"signed for service {svc}, not {service}"
    amz_date = call.headers.get("X-Amz-Date", "")
    if not amz_date.startswith(day):
        return "X-Amz-Date does not match the credential scope's date"
    names = signed.split(";")
    if "host" not in names or names != sorted(names):
        return "SignedHeaders must be sorted and include host"
    lower = {k.lower(): v for k, v in call.headers.items()}
    canonical_headers = "".join(f"{h}:{' '.join(lower.get(h, '').split())}\n" for h in names)
    query = "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in call.query.items()))
    request = "\n".join([call.method, quote(call.path, safe="/-_.~"), query, canonical_headers, signed,
                         hashlib.sha256(call.body).hexdigest()])
    scope = f"{day}/{region}/{svc}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    k = f"AWS4{secret}".encode()
    for part in (day, region, svc, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return "" if hmac.compare_digest(expected, signature) else f"signature mismatch for key {key_id}"


@dataclass
class ServicePeer:
    port: int = field(default_factory=free_port)
    calls: list[Call] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # the status answered to each recorded call
    fail_next: list[int] = field(default_factory=list)  # statuses to answer, in order, before checking
    wechat_tokens: int = 0
    wechat_expire_next: bool = False
    telegram_flood: bool = False  # answer the next sendMessage as Telegram's flood control does

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def at(self, prefix: str) -> list[Call]:
        return [c for c in list(self.calls) if c.path.startswith(prefix)]

    def start(self) -> ServicePeer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._served = ServedApp(app, self.port)
        return self

    def stop(self) -> None:
        self._served.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        call = Call(request.method, request.path, dict(request.query), dict(request.headers), await request.read())
        if self.fail_next:
            status = self.fail_next.pop(0)
            return web.Response(status=status, text=f"failing on purpose with {status}")
        self.calls.append(call)
        answer = self._route(call)
        self.answers.append(answer.status)
        return answer

    def _route(self, call: Call) -> web.Response:
        for prefix, handler in (("/opsgenie/", self._opsgenie), ("/victorops/", self._victorops),
                                ("/pushover/", self._pushover), ("/sns/", self._sns), ("/teams/", self._teams),
                                ("/teamsv2/", self._teams_v2),
                                ("/discord/", self._discord), ("/telegram/", self._telegram),
                                ("/webex/", self._webex), ("/wechat/", self._wechat)):
            if call.path.startswith(prefix):
                return handler(call)
        return web.Response(status=404, text="no such service")

    # Opsgenie Alert API v2: https://docs.opsgenie.com/docs/alert-api
    def _opsgenie(self, c: Call) -> web.Response:
        if c.headers.get("Authorization") != f"GenieKey {OPSGENIE_KEY}":
            return _json(401, {"message": "Could not authenticate", "took": 0.0, "requestId": "e"})
        accepted = _json(202, {"result": "Request will be processed", "took": 0.01, "requestId": f"r{len(self.calls)}"})
        if c.method == "POST" and c.path == "/opsgenie/v2/alerts":
            b = c.json()
            if not b.get("message") or len(b["message"]) > 130 or len(b.get("alias", "")) > 512:
                return _json(422, {"message": "Request body is not valid", "errors": {"message": "invalid"}})
            if len(b.get("description", "")) > 15000 or b.get("priority", "P3") not in ("P1", "P2", "P3", "P4", "P5"):
                return _json(422, {"message": "Request body is not valid"})
            for r in b.get("responders", []):
                if r.get("type") not in ("team", "user", "escalation", "schedule"):
                    return _json(422, {"message": f"invalid responder type {r.get('type')}"})
            return accepted
        m = re.fullmatch(r"/opsgenie/v2/alerts/([0-9a-f]{64})/(close|message|description)", c.path)
        if m and c.query.get("identifierType") == "alias" and c.method == ("POST" if m.group(2) == "close" else "PUT"):
            return accepted
        return _json(404, {"message": "not found"})

    # VictorOps REST endpoint: POST .../alert/<api key>/<routing key>
    def _victorops(self, c: Call) -> web.Response:
        m = re.fullmatch(r"/victorops/([^/]+)/([^/]+)", c.path)
        if m is None or m.group(1) != VICTOROPS_KEY:
            return _json(404, {"result": "failure", "message": "bad api key"})
        b = c.json()
        if b.get("message_type") not in ("CRITICAL", "WARNING", "INFO", "ACKNOWLEDGEMENT", "RECOVERY") \
                or not b.get("entity_id"):
            return _json(400, {"result": "failure", "message": "message_type and entity_id are required"})
        return _json(200, {"result": "success", "entity_id": b["entity_id"]})

    # Pushover: https://pushover.net/api
    def _pushover(self, c: Call) -> web.Response:
        f = c.form()
        errors = []
        if c.method != "POST" or c.path != "/pushover/1/messages.json":
            return _json(404, {"status": 0, "errors": ["not found"]})
        if f.get("token") != PUSHOVER_TOKEN:
            errors.append("application token is invalid")
        if f.get("user") != PUSHOVER_USER:
            errors.append("user identifier is invalid")
        if not f.get("message") or len(f["message"]) > 1024 or len(f.get("title", "")) > 250 \
                or len(f.get("url", "")) > 512:
            errors.append("message cannot be blank, or a field is too long")
        if f.get("priority") == "2" and not (int(f.get("retry", 0)) >= 30 and 0 < int(f.get("expire", 0)) <= 10800):
            errors.append("retry must be at least 30 and expire at most 10800 for emergency priority")
        if errors:
            return _json(400, {"status": 0, "errors": errors, "request": "x"})
        return _json(200, {"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"})

    # SNS Publish (query API): https://docs.aws.amazon.com/sns/latest/api/API_Publish.html
    def _sns(self, c: Call) -> web.Response:
        def error(status: int, code: str, message: str) -> web.Response:
            return web.Response(status=status, content_type="text/xml", text=(
                '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>e</RequestId></ErrorResponse>"))

        if problem := sigv4_problem(c, AWS_SECRET, "sns"):
            return error(403, "SignatureDoesNotMatch", problem)
        f = c.form()
        if f.get("Action") != "Publish" or f.get("Version") != "2010-03-31":
            return error(400, "InvalidAction", "unknown action")
        targets = [k for k in ("TopicArn", "TargetArn", "PhoneNumber") if f.get(k)]
        if len(targets) != 1 or not f.get("Message") or len(f["Message"].encode()) > 256 * 1024 \
                or len(f.get("Subject", "")) > 100 or "\n" in f.get("Subject", ""):
            return error(400, "InvalidParameter", "Invalid parameter")
        return web.Response(status=200, content_type="text/xml", text=(
            '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
            "<MessageId>567910cd-659e-55d4-8ccb-5aaf14679dc0</MessageId></PublishResult></PublishResponse>"))

    # Teams incoming webhook (connector MessageCard)
    def _teams(self, c: Call) -> web.Response:
        b = c.json()
        if c.path != TEAMS_PATH or b.get("type") != "MessageCard" or not (b.get("text") or b.get("summary")):
            return web.Response(status=400, text="Summary or Text is required.")
        return web.Response(status=200, text="1")

    # Teams Workflows webhook: a message whose attachment is an Adaptive Card
    def _teams_v2(self, c: Call) -> web.Response:
        b = c.json()
        atts = b.get("attachments") or [{}]
        card = atts[0].get("content", {})
        if c.path != TEAMS_V2_PATH or b.get("type") != "message" or len(atts) != 1 \
                or atts[0].get("contentType") != "application/vnd.microsoft.card.adaptive" \
                or card.get("type") != "AdaptiveCard" or not card.get("version") or not card.get("body"):
            return _json(400, {"error": {"code": "InvalidRequestContent", "message": "not an Adaptive Card message"}})
        return web.Response(status=202)

    # Discord webhook: https://discord.com/developers/docs/resources/webhook#execute-webhook
    def _discord(self, c: Call) -> web.Response:
        b = c.json()
        embeds = b.get("embeds", [])
        bad = c.path != DISCORD_PATH or len(b.get("content", "")) > 2000 or len(embeds) > 10 or not (
            b.get("content") or embeds) or any(len(e.get("title", "")) > 256 or len(e.get("description", "")) > 4096
                                               for e in embeds)
        if bad:
            return _json(400, {"message": "Invalid Form Body", "code": 50035})
        return web.Response(status=204)

    # Telegram Bot API sendMessage: https://core.telegram.org/bots/api#sendmessage
    def _telegram(self, c: Call) -> web.Response:
        if c.path != f"/telegram/bot{TELEGRAM_TOKEN}/sendMessage":
            return _json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if self.telegram_flood:
            self.telegram_flood = False
            return _json(429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                               "parameters": {"retry_after": 7}})
        b = c.json()
        if not b.get("chat_id") or not b.get("text") or len(b["text"]) > 4096:
            return _json(400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty "
                                                                             "or too long"})
        if b.get("parse_mode") not in (None, "HTML", "Markdown", "MarkdownV2"):
            return _json(400, {"ok": False, "error_code": 400, "description": "Bad Request: unsupported parse_mode"})
        if b.get("parse_mode") == "HTML" and re.search(r"<(?!/?(b|i|u|s|a|code|pre)\b)", b["text"]):
            return _json(400, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse entities"})
        return _json(200, {"ok": True, "result": {"message_id": 42, "chat": {"id": b["chat_id"]}}})

    # Webex messages: https://developer.webex.com/docs/api/v1/messages/create-a-message
    def _webex(self, c: Call) -> web.Response:
        if c.headers.get("Authorization") != f"Bearer {WEBEX_TOKEN}":
            return _json(401, {"message": "The request requires a valid access token set in the Authorization "
                                          "request header."})
        b = c.json()
        if c.path != "/webex/v1/messages" or not b.get("roomId") or len(b.get("markdown", "").encode()) > 7439:
            return _json(400, {"message": "roomId and text or markdown are required"})
        return _json(200, {"id": "Y2lzY29zcGFyazovL3VzL01FU1NBR0UvOTJkYjNiZTAtNDNiZC0xMWU2LThhZTktZGQ1YjNkZmM1NjVk",
                           "roomId": b["roomId"]})

    # WeChat Work: gettoken, then message/send
    def _wechat(self, c: Call) -> web.Response:
        if c.path == "/wechat/cgi-bin/gettoken" and c.method == "GET":
            if (c.query.get("corpid"), c.query.get("corpsecret")) != (WECHAT_CORP, WECHAT_SECRET):
                return _json(200, {"errcode": 40001, "errmsg": "invalid credential"})
            self.wechat_tokens += 1
            return _json(200, {"errcode": 0, "errmsg": "ok", "access_token": f"wx-token-{self.wechat_tokens}-abcdef",
                               "expires_in": 7200})
        if c.path == "/wechat/cgi-bin/message/send" and c.method == "POST":
            if c.query.get("access_token") != f"wx-token-{self.wechat_tokens}-abcdef" or self.wechat_expire_next:
                self.wechat_expire_next = False
                return _json(200, {"errcode": 42001, "errmsg": "access_token expired"})
            b = c.json()
            kind = b.get("msgtype")
            if kind not in ("text", "markdown") or not b.get(kind, {}).get("content") \
                    or len(b[kind]["content"].encode()) > 2048 or not (b.get("touser") or b.get("toparty")
                                                                        or b.get("totag")):
                return _json(200, {"errcode": 40008, "errmsg": "invalid message type or empty recipients"})
            return _json(200, {"errcode": 0, "errmsg": "ok", "msgid": "MSGID1"})
        return _json(404, {"errcode": 404, "errmsg": "not found"})
