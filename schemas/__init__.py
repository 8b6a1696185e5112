"""Wire contracts of Watchkeeper: pydantic v2 models, orjson codecs, series ids, topic names.

Imported by every other package; imports none of them.
"""

from watchkeeper.schemas.aggregates import QUANTILES, SketchBins, WindowAggregate
from watchkeeper.schemas.alerts import AlertEvent, AlertSource, AlertState
from watchkeeper.schemas.codec import SchemaError, decode, decode_sample_message, encode
from watchkeeper.schemas.deadletter import DeadLetter
from watchkeeper.schemas.notifications import NotificationRecord
from watchkeeper.schemas.samples import Sample, SampleBatch, SampleKind, SeriesBlock
from watchkeeper.schemas.series_id import format_series_id, series_id
from watchkeeper.schemas.topics import DEFAULT_TOPICS, TopicSpec

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
