"""Wire contracts of Watchkeeper: pydantic v2 models, orjson codecs, series ids, topic names.

Imported by every other package; imports none of them.
"""

from schemas.aggregates import QUANTILES, SketchBins, WindowAggregate
from schemas.alerts import AlertEvent, AlertSource, AlertState
from schemas.codec import SchemaError, decode, decode_sample_message, encode
from schemas.deadletter import DeadLetter
from schemas.notifications import NotificationRecord
from schemas.samples import Sample, SampleBatch, SampleKind, SeriesBlock
from schemas.series_id import format_series_id, series_id
from schemas.topics import DEFAULT_TOPICS, TopicSpec

__all__ = [
    "DEFAULT_TOPICS",
    "QUANTILES",
    "AlertEvent",
    "AlertSource",
    "AlertState",
    "DeadLetter",
    "NotificationRecord",
    "Sample",
    "SampleBatch",
    "SampleKind",
    "SchemaError",
    "SeriesBlock",
    "SketchBins",
    "TopicSpec",
    "WindowAggregate",
    "decode",
    "decode_sample_message",
    "encode",
    "format_series_id",
    "series_id",
]
