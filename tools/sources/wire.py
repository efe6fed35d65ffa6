"""Reading JSON from a backend value by value: what cannot be read is left out and listed.

Why: one odd field in a backend's answer must not cost the whole cluster. A source describes
each body as pydantic models deriving ``LenientModel`` and reads it with ``read_wire``:

* a field that is missing or holds an unusable value becomes ``None`` (declare it optional,
  ``X | None = None``, when the facts can do without it) and is remembered;
* a record that lacks a required field (what identifies it, or what its facts cannot do
  without) fails, and a ``Records[...]`` list leaves it out and remembers why;
* only a body that is not the expected kind of JSON at all raises ``ValidationError``.

``wire_issues(model)`` then lists everything left out, as paths a reader can follow
(``nodes[node-2].gpus[3].memoryUtilization not reported by this backend``); a source passes
them on with ``sources.notes.note``. Extra fields are ignored: a newer backend may add some.
Times are accepted as epoch numbers (milliseconds, or seconds when too small to be
milliseconds) or ISO strings, and written back in the form each field's type names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

# ---- times -------------------------------------------------------------------------------------

#: epoch numbers below this are seconds, not milliseconds (1e11 ms is March 1973)
_EPOCH_MS_FROM = 100_000_000_000


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_datetime(value: object) -> object:
    if isinstance(value, bool):
        return value  # let validation reject it
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) >= _EPOCH_MS_FROM else value
        return datetime.fromtimestamp(seconds, tz=UTC)
    return value


def iso_z(value: datetime) -> str:
    """``toISOString()`` form: UTC, milliseconds, ``Z``."""
    return _as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(value: datetime) -> int:
    """``Date.now()`` form: integer milliseconds since the epoch."""
    return round(_as_utc(value).timestamp() * 1000)


_TIME_IN = (BeforeValidator(_to_datetime),)
#: A time the API sends as an ISO string (node readings, ``lastUpdated``, ``/health``).
IsoTime = Annotated[datetime, *_TIME_IN, PlainSerializer(iso_z, return_type=str)]
#: A time the API sends as epoch milliseconds (history, ranges, alert rules and events).
EpochMs = Annotated[datetime, *_TIME_IN, PlainSerializer(epoch_ms, return_type=int)]


def _id_text(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: A rule id: text (UUIDs); a backend on integer keys may send numbers, kept as text.
TextId = Annotated[str, BeforeValidator(_id_text)]


# ---- lenient reading ---------------------------------------------------------------------------


class RecordList(list):  # type: ignore[type-arg]
    """A list read record by record: the records that could be read, and why others could not."""

    dropped: list[str]


def _read_records(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if not isinstance(value, list):
        return handler(value)  # not a list at all: the field itself is unusable
    kept = RecordList()
    kept.dropped = []
    try:  # the common case, every record readable: one validation of the whole list
        kept.extend(handler(value))
        return kept
    except ValidationError:
        kept.clear()
    for position, item in enumerate(value):
        try:
            kept.extend(handler([item]))
        except ValidationError as exc:
            kept.dropped.append(f"[{position}] left out: {describe_errors(exc, prefix_loc=1)}")
    return kept


T = TypeVar("T")
#: A list whose unreadable records are left out (and listed) instead of failing the whole list.
Records = Annotated[list[T], WrapValidator(_read_records)]


class LenientModel(BaseModel):
    """A record of a backend's JSON, read value by value; serialise with ``to_wire()``.

    Optional fields hold ``None`` when the backend left them out or sent something unusable;
    ``_issues`` remembers which, for ``wire_issues``. Required fields are what a record cannot
    do without: when one is missing or unusable the record fails (and its list leaves it out).
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    #: the field whose value names a record in notes (``nodes[node-2]`` rather than ``nodes[2]``)
    record_key: ClassVar[str | None] = None
    #: whether a ``null`` sent for an optional field is listed like an unusable value: true for
    #: readings, where null is a value the backend could not make; false where null has a
    #: meaning of its own (an alert not yet resolved, no Slurm)
    null_is_unusable: ClassVar[bool] = False

    _issues: list[tuple[str, str]] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _degrade_per_value(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        unusable: dict[str, str] = {}
        try:
            model = handler(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc = error["loc"]
                if loc and isinstance(loc[0], str) and error["type"] != "missing" and loc[0] not in unusable:
                    unusable[loc[0]] = f"{describe_errors(exc, only=loc[0])}; received {received(data.get(loc[0]))}"
            required = {field.alias or name for name, field in cls.model_fields.items() if field.is_required()}
            if not unusable or required & unusable.keys():
                raise
            model = handler({key: value for key, value in data.items() if key not in unusable})
        if cls.null_is_unusable:
            unusable.update({wire: "received null" for wire, name in _optional_fields(cls)
                             if data.get(wire, data.get(name, 0)) is None and wire not in unusable})
        issues = [(key, f"unusable ({why}); left out") for key, why in unusable.items()]
        issues.extend((wire, "not reported by this backend")
                      for wire, name in _optional_fields(cls) if wire not in data and name not in data)
        model._issues = issues
        return model

    def to_wire(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude=exclude)


#: the most characters of a received value quoted in a note
RECEIVED_MAX_CHARS = 40


def received(value: object) -> str:
    """A received value as a note quotes it: JSON-like, short (it is the backend's text)."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= RECEIVED_MAX_CHARS else text[: RECEIVED_MAX_CHARS - 1] + "…"


_OPTIONAL_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _optional_fields(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """(wire name, Python name) of each optional field, computed once per model."""
    if model not in _OPTIONAL_FIELDS:
        _OPTIONAL_FIELDS[model] = tuple(
            (field.alias or name, name) for name, field in model.model_fields.items() if not field.is_required()
        )
    return _OPTIONAL_FIELDS[model]


def describe_errors(exc: ValidationError, *, only: str | None = None, prefix_loc: int = 0, shown: int = 2) -> str:
    """Validation errors as ``field 'a.b': reason`` phrases (the first ``shown`` of them)."""
    problems = []
    for error in exc.errors():
        loc = error["loc"][prefix_loc:]
        if only is not None and (not loc or loc[0] != only):
            continue
        path = ""
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        problems.append(f"field '{path}': {error['msg']}" if path else error["msg"])
    more = len(problems) - shown
    return "; ".join(problems[:shown]) + (f" (and {more} more)" if more > 0 else "")


def wire_issues(value: object, path: str = "") -> list[str]:
    """Every value left ``None`` and every record left out, as lines naming where: the notes a
    source passes on with its facts."""
    lines: list[str] = []
    if isinstance(value, RecordList):
        lines.extend(f"{path}{dropped}" for dropped in value.dropped)
    if isinstance(value, list):
        for position, item in enumerate(value):
            if isinstance(item, LenientModel) and (item._issues or _container_fields(type(item))):
                key = getattr(item, item.record_key, None) if item.record_key else None
                lines.extend(wire_issues(item, f"{path}[{key if key is not None else position}]"))
        return lines
    if not isinstance(value, LenientModel):
        return lines
    prefix = f"{path}." if path else ""
    lines.extend(f"{prefix}{key} {what}" for key, what in value._issues)
    for name, wire in _container_fields(type(value)):
        child = getattr(value, name)
        if isinstance(child, LenientModel | list):
            lines.extend(wire_issues(child, f"{prefix}{wire}"))
    return lines


_CONTAINER_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _container_fields(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """(Python name, wire name) of the fields that may hold records or lists, computed once per
    model: the only places ``wire_issues`` needs to look into (a history point has none)."""
    if model not in _CONTAINER_FIELDS:
        _CONTAINER_FIELDS[model] = tuple(
            (name, field.alias or name) for name, field in model.model_fields.items()
            if _may_hold_records(field.annotation)
        )
    return _CONTAINER_FIELDS[model]


def _may_hold_records(annotation: Any) -> bool:
    if annotation is list or get_origin(annotation) is list:
        return True
    if isinstance(annotation, type) and issubclass(annotation, LenientModel):
        return True
    return any(_may_hold_records(arg) for arg in get_args(annotation))


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def read_wire(shape: Any, payload: object) -> Any:
    """``payload`` read as ``shape``; ``ValidationError`` only when it is not that kind of JSON."""
    if shape not in _ADAPTERS:
        _ADAPTERS[shape] = TypeAdapter(shape)
    return _ADAPTERS[shape].validate_python(payload)


