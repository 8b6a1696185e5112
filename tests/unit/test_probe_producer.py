"""Given a probe's status, body and timings, expect blackbox's success decision and series at the given time."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from watchkeeper.plumbing.config import ProbeTargetConfig
from watchkeeper.producers.probe import (
    ProbeResult,
    _stdlib_not_after,
    cert_not_after,
    probe_labels,
    probe_series,
    probe_succeeded,
)
from watchkeeper.schemas import SampleBatch

NOW = 1_700_000_000.0


def _target(**fields: object) -> ProbeTargetConfig:
    return ProbeTargetConfig.model_validate({"url": "http://svc.example:8080/health", **fields})


@pytest.mark.parametrize(("fields", "status", "body", "expected"), [
    ({}, 200, "ok", True),
    ({}, 204, "", True),
    ({}, 0, None, False),
    ({}, 301, "", False),
    ({}, 500, "ok", False),
    ({"expect_status": [301, 302]}, 301, "", True),
    ({"expect_status": [301, 302]}, 200, "ok", False),
    ({"expect_status": [503]}, 503, "", True),
    ({"body_match": r'"status":\s*"ok"'}, 200, '{"status": "ok"}', True),
    ({"body_match": "ready"}, 200, "not yet", False),
    ({"body_match": "ready"}, 500, "ready", False),
    ({"body_match": "ready"}, 200, None, False),
])
def test_success_needs_expected_status_and_matching_body(
        fields: dict[str, object], status: int, body: str | None, expected: bool) -> None:
    assert probe_succeeded(_target(**fields), status, body) is expected


def test_instance_is_the_url_and_target_labels_are_added() -> None:
    assert probe_labels(_target(labels={"team": "web"})) == {
        "instance": "http://svc.example:8080/health", "team": "web"}
    assert probe_labels(_target(labels={"instance": "svc"})) == {"instance": "svc"}


def test_series_of_a_successful_https_probe() -> None:
    result = ProbeResult(success=True, status=200, duration=0.25,
                         phases={"resolve": 0.01, "connect": 0.05, "processing": 0.15, "transfer": 0.04},
                         cert_not_after=NOW + 30 * 86_400)
    blocks = probe_series(_target(labels={"team": "web"}), result, NOW)
    got = {(b.name, b.labels.get("phase", "")): b.values[0] for b in blocks}
    assert got == {
        ("probe_success", ""): 1.0,
        ("probe_duration_seconds", ""): 0.25,
        ("probe_http_status_code", ""): 200.0,
        ("probe_http_duration_seconds", "resolve"): 0.01,
        ("probe_http_duration_seconds", "connect"): 0.05,
        ("probe_http_duration_seconds", "processing"): 0.15,
        ("probe_http_duration_seconds", "transfer"): 0.04,
        ("probe_ssl_earliest_cert_expiry", ""): NOW + 30 * 86_400,
        ("probe_ssl_cert_days_left", ""): 30.0,
    }
    assert all(b.ts == [NOW] and b.kind == "gauge" for b in blocks)
    assert all(b.labels["instance"] == "http://svc.example:8080/health" and b.labels["team"] == "web"
               for b in blocks)
    SampleBatch(source="probe", labels={"job": "probe"}, series=blocks)


def test_a_down_target_reports_zeros_and_no_certificate_series() -> None:
    blocks = probe_series(_target(), ProbeResult(success=False, status=0, duration=5.0), NOW)
    assert {b.name: b.values[0] for b in blocks} == {
        "probe_success": 0.0, "probe_duration_seconds": 5.0, "probe_http_status_code": 0.0}


def _der_cert(not_after: dt.datetime) -> bytes:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "unit")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(not_after - dt.timedelta(days=60)).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_certificate_expiry_is_read_with_cryptography_and_with_the_stdlib_alike(
        monkeypatch: pytest.MonkeyPatch) -> None:
    not_after = dt.datetime(2031, 5, 17, 12, 30, tzinfo=dt.UTC)
    der = _der_cert(not_after)
    assert cert_not_after(der) == not_after.timestamp()
    assert _stdlib_not_after(der) == not_after.timestamp()
    monkeypatch.setitem(sys.modules, "cryptography", None)  # as if not installed: the stdlib path
    assert cert_not_after(der) == not_after.timestamp()
