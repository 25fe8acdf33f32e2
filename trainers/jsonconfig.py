"""One way for every config dataclass to go to and from JSON (configs are plain data)."""

import dataclasses
import json
import types
import typing
from pathlib import Path


class JsonConfig:
    """Mixin for ``@dataclass`` configs: JSON round-trip that refuses unknown keys and values
    of the wrong type, and an atomic ``save`` so a run killed while saving never leaves half a
    config behind."""

    def to_json(self) -> str:
        """Every field as sorted, indented JSON: the exact config a run folder records."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "config JSON"):
        """The config from its JSON (``source`` names it in errors, e.g. its file): unknown keys
        and values whose type is not the field's (``"epochs": "4"``) are refused with a
        ``ValueError``, not silently dropped or left to fail later."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source} is not valid JSON ({error}).") from None
        if not isinstance(data, dict):
            raise ValueError(f"{source} must hold a JSON object of {cls.__name__} fields; got "
                             f"{_json_kind(data)}.")
        data = cls.upgrade(data)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown config keys {sorted(unknown)} for {cls.__name__} in "
                             f"{source}.")
        hints = typing.get_type_hints(cls)
        for name, value in data.items():
            if not matches(hints[name], value):
                raise ValueError(f"{source}: field {name!r} is {json.dumps(value)} "
                                 f"({_json_kind(value)}); expected {describe(hints[name])}.")
        return cls(**data)

    @classmethod
    def upgrade(cls, data: dict) -> dict:
        """A saved config's fields as this version reads them (a subclass fills in what older
        versions did not write); as they are here."""
        return data

    def save(self, path) -> None:
        """Write the JSON to ``path`` atomically (temporary file, then rename)."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(self.to_json() + "\n")
        temporary.replace(path)

    @classmethod
    def load(cls, path):
        """The config saved at ``path``; a ``ValueError`` naming the file when it is not one."""
        return cls.from_json(Path(path).read_text(), source=str(path))


def matches(annotation, value) -> bool:
    """Whether the JSON ``value`` fits a field annotated ``annotation``: ``int`` takes whole
    numbers (not ``true``), ``float`` any number, ``tuple[X, ...]`` a list of X, ``dict[str, X]``
    an object of X, ``X | None`` also ``null``."""
    if isinstance(annotation, types.UnionType):
        return any(matches(option, value) for option in typing.get_args(annotation))
    origin, args = typing.get_origin(annotation) or annotation, typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        return isinstance(value, list) and (
            not args or all(matches(args[0], item) for item in value))
    if origin is dict:
        return isinstance(value, dict) and (
            not args or all(matches(args[1], item) for item in value.values()))
    return isinstance(value, origin)


def describe(annotation) -> str:
    """An annotation as the JSON it takes: ``int | None`` -> ``an integer or null``."""
    if isinstance(annotation, types.UnionType):
        return " or ".join(describe(option) for option in typing.get_args(annotation))
    origin, args = typing.get_origin(annotation) or annotation, typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin in (tuple, list):
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    if origin is dict:
        return f"an object of {_plural(describe(args[1]))}" if args else "an object"
    return {int: "an integer", float: "a number", bool: "true or false",
            str: "a string"}.get(origin, getattr(origin, "__name__", str(origin)))


def _plural(kind: str) -> str:
    """``a number`` -> ``numbers`` (the items of a list or object)."""
    return kind.split(" ", 1)[1] + "s" if kind.startswith(("a ", "an ")) else kind


def _json_kind(value) -> str:
    """The JSON type of a parsed value, as a message names it: ``a string``, ``null``..."""
    if value is None:
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}[type(value)]
