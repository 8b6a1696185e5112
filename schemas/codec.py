"""orjson on the wire: every value is a JSON object with ``"v": 1``."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from watchkeeper.schemas.samples import Sample, SampleBatch

M = TypeVar("M", bound=BaseModel)


class SchemaError(ValueError):
    """A message that does not decode or validate; the text is the dead-letter reason."""


def encode(model: BaseModel) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))


def decode(raw: bytes, model: type[M]) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise SchemaError(_describe(model.__name__, exc)) from None


def decode_sample_message(raw: bytes, source: str = "") -> SampleBatch:
    """Decode a `wk.samples` value: a `SampleBatch`, or a single `Sample` turned into a one-point batch."""
    try:
        head = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"not JSON: {exc}") from None
    if not isinstance(head, dict):
        raise SchemaError(f"expected a JSON object, got {type(head).__name__}")
    if head.get("v") != 1:
        raise SchemaError(f"unsupported schema version v={head.get('v')!r} (expected 1)")
    return sample_batch_of(head, source)


def sample_batch_of(head: dict[str, object], source: str = "") -> SampleBatch:
    """A decoded `Sample` or `SampleBatch` object (a batch has `series`) as a batch; the wire decoder and the
    push API share it, so both accept and reject exactly the same objects with the same reasons."""
    try:
        if "series" in head:
            return SampleBatch.model_validate(head)
        return SampleBatch.from_sample(Sample.model_validate(head), source=source)
    except ValidationError as exc:
        kind = "SampleBatch" if "series" in head else "Sample"
        raise SchemaError(_describe(kind, exc)) from None


def _describe(kind: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return f"invalid {kind}: " + "; ".join(parts) + more
