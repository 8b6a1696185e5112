"""Stand-ins for SMS providers on loopback: one aiohttp server that checks each request as the provider
documents it (Twilio's Messages API: form fields and basic auth; SNS `Publish`: the SigV4 signature,
recomputed with botocore's own signer from what arrived) and answers as the provider does, or with
scripted answers (429 with Retry-After, 400 for a bad number). A request that breaks the provider's rules
is answered 400 and listed in `violations`, so a test sees what was wrong."""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.integration.notify_peers import ServedApp
from watchkeeper.plumbing.broker import free_port

TWILIO_SID, TWILIO_TOKEN = "AC0123456789abcdef0123456789abcdef", "twilio-auth-token-0042"
AWS_KEY_ID, AWS_SECRET, AWS_REGION = "AKIDWATCHKEEPERTEST", "aws/secret+key-for-tests-0042", "eu-west-1"
_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


@dataclass
class Sms:
    provider: str
    to: str
    text: str
    form: dict[str, str]
    time: float


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SmsProviderServer:
    port: int = field(default_factory=free_port)
    sms: list[Sms] = field(default_factory=list)
    attempts: list[tuple[str, float]] = field(default_factory=list)  # (path, time) of every request
    violations: list[str] = field(default_factory=list)
    script: list[Answer] = field(default_factory=list)  # answered first, in order, after the checks pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SmsProviderServer:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._twilio)
        app.router.add_post("/sns/", self._sns)
        app.router.add_route("*", "/gateway/{tail:.*}", self._gateway)
        self._served = ServedApp(app, self.port)
        return self

    def stop(self) -> None:
        self._served.stop()

    def _refuse(self, why: str) -> web.Response:
        self.violations.append(why)
        return web.Response(status=400, text=why)

    def _scripted(self) -> web.Response | None:
        if not self.script:
            return None
        a = self.script.pop(0)
        return web.Response(status=a.status, text=a.body, headers=a.headers)

    async def _twilio(self, request: web.Request) -> web.Response:
        self.attempts.append((request.path, time.time()))
        raw = await request.read()
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return self._refuse(f"twilio: basic auth is not SID + token: {request.headers.get('Authorization')}")
        if request.match_info["sid"] != TWILIO_SID:
            return self._refuse("twilio: the account SID in the path is not the one authenticated")
        if request.content_type != "application/x-www-form-urlencoded":
            return self._refuse(f"twilio: body is {request.content_type}, not form-encoded")
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        if not {"To", "Body"} <= set(form) or len({"From", "MessagingServiceSid"} & set(form)) != 1 \
                or set(form) - {"To", "Body", "From", "MessagingServiceSid"}:
            return self._refuse(f"twilio: form fields {sorted(form)}")
        if (scripted := self._scripted()) is not None:
            return scripted
        self.sms.append(Sms("twilio", form["To"], form["Body"], form, time.time()))
        return web.json_response({"sid": f"SM{len(self.sms):032x}", "status": "queued", "to": form["To"],
                                  "body": form["Body"]}, status=201)

    async def _sns(self, request: web.Request) -> web.Response:
        self.attempts.append((request.path, time.time()))
        raw = await request.read()
        m = _AUTH.match(request.headers.get("Authorization", ""))
        if m is None:
            return self._refuse(f"sns: no SigV4 Authorization header: {request.headers.get('Authorization')}")
        key_id, day, region, service, signed, signature = m.groups()
        stamp = request.headers.get("X-Amz-Date", "")
        if (key_id, region, service) != (AWS_KEY_ID, AWS_REGION, "sns") or not stamp.startswith(day):
            return self._refuse(f"sns: credential scope {key_id}/{day}/{region}/{service} for {stamp}")
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        if abs(when - time.time()) > 300:
            return self._refuse("sns: X-Amz-Date more than 5 minutes off")
        names = signed.split(";")
        if "host" not in names or "x-amz-date" not in names:
            return self._refuse(f"sns: SignedHeaders {signed} must cover host and x-amz-date")
        # Recompute the signature with botocore's signer from the request as it arrived.
        again = AWSRequest(method=request.method, url=f"http://{request.host}{request.path_qs}", data=raw,
                           headers={n: request.headers[n] for n in names if n in request.headers})
        again.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials(AWS_KEY_ID, AWS_SECRET), "sns", AWS_REGION)
        if signer.signed_headers(signer.headers_to_sign(again)) != signed:
            return self._refuse("sns: the signed headers did not all arrive")
        want = signer.signature(signer.string_to_sign(again, signer.canonical_request(again)), again)
        if want != signature:
            return self._refuse("sns: SigV4 signature does not match botocore's for the request received")
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        if form.get("Action") != "Publish" or form.get("Version") != "2010-03-31" or "PhoneNumber" not in form \
                or "Message" not in form or "TopicArn" in form:
            return self._refuse(f"sns: not a Publish to a phone number: {sorted(form)}")
        if (scripted := self._scripted()) is not None:
            return scripted
        self.sms.append(Sms("sns", form["PhoneNumber"], form["Message"], form, time.time()))
        return web.Response(content_type="text/xml", text=(
            '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
            f"<MessageId>{len(self.sms):08d}-0000-4000-8000-000000000000</MessageId></PublishResult>"
            "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishResponse>"))

    async def _gateway(self, request: web.Request) -> web.Response:
        self.attempts.append((request.path, time.time()))
        raw = await request.read()
        if request.headers.get("Authorization") != "Bearer gateway-token-0042":
            return self._refuse("gateway: missing bearer token")
        body = await request.json() if raw else {}
        if (scripted := self._scripted()) is not None:
            return scripted
        self.sms.append(Sms("http", body.get("number", ""), body.get("message", ""), body, time.time()))
        return web.json_response({"ok": True}, status=202)

    def twilio_config(self, to: str) -> dict[str, object]:
        return {"to": to, "twilio": {"account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN,
                                     "from": "+15005550006", "api_url": self.url}}

    def sns_config(self, to: str) -> dict[str, object]:
        return {"to": to, "sns": {"region": AWS_REGION, "access_key_id": AWS_KEY_ID,
                                  "secret_access_key": AWS_SECRET, "endpoint": self.url + "/sns/"}}
