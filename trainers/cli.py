"""One command-line convention for every CLI: flags generated from a config dataclass, and
one set of exit codes (style.md: a CLI parses flags into a config and calls one function).

    parser = cli.Parser(prog="python -m experiments.sharing")
    cli.add_config_flags(parser, SharingConfig, HELP)
    config = cli.config_from_args(SharingConfig, parser.parse_args(argv))

A field ``batch_size: int | None`` becomes ``--batch-size N``; a ``bool`` ``--x/--no-x``; a
``tuple[float, ...]`` ``--x A B ...``; a bare ``dict`` one JSON value; a ``dict[str, float]``
``--x NAME=VALUE ...``. Exit codes (``run_cli``), the same for every CLI: 0 done; 2 bad input (a
``ValueError``, a refused flag included), one ``error:`` line on stderr; 1 a run that started
and failed (``RunFailed``, e.g. a diverged training run, or an ``OSError`` such as a failed
write), one ``error:`` line. Never a traceback. Standard library only: ``trainers.array_fit``
runs where there is no TensorFlow.
"""

import argparse
import dataclasses
import json
import sys
import types
import typing


class RunFailed(RuntimeError):
    """A run that started and did not finish (exit 1), as opposed to bad input (exit 2)."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose refusals raise ``ValueError`` (exit 2, one line, through
    ``run_cli``) instead of exiting with the usage."""

    def error(self, message):
        """Raise argparse's complaint as a ``ValueError`` (exit 2 through ``run_cli``)."""
        raise ValueError(f"{message} ({self.prog} -h lists the flags)")


def run_cli(command, *args) -> int:
    """``command(*args)``'s exit code: 0 when it returns, 2 for a ``ValueError`` (bad input),
    1 for ``RunFailed`` or ``OSError`` (a failed run); each error one line, no traceback."""
    try:
        command(*args)
    except ValueError as error:
        return _report(error, 2)
    except (RunFailed, OSError) as error:
        return _report(error, 1)
    return 0


def _report(error: Exception, code: int) -> int:
    """Print ``error`` as the one ``error:`` line and return ``code``."""
    print(f"error: {error}", file=sys.stderr)
    return code


def add_config_flags(parser: argparse.ArgumentParser, config_class, help: dict, *,
                     only=None, skip=(), custom=None, suppress_defaults: bool = False) -> None:
    """One flag per field of ``config_class`` (``--batch-size`` for ``batch_size``): typed by its
    annotation, defaulting to the field's default (required without one), described by
    ``help[name]`` and its default. ``only``/``skip`` choose the fields, ``custom[name]``
    overrides argparse options; ``suppress_defaults`` leaves a flag not given out of the parsed
    args (its value comes from elsewhere, e.g. a recipe)."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if field.name in skip or (only is not None and field.name not in only):
            continue
        default = _default(field)
        options = {"dest": field.name, **_kind(hints[field.name])}
        if default is dataclasses.MISSING:
            options["required"] = True
        else:
            options["default"] = argparse.SUPPRESS if suppress_defaults else default
        options.update((custom or {}).get(field.name, {}))
        shown = default if options.get("default") is argparse.SUPPRESS else options.get("default")
        options.setdefault("help", _help(help.get(field.name, ""), shown, options))
        parser.add_argument("--" + field.name.replace("_", "-"), **options)


def flag_values(config_class, args: argparse.Namespace) -> dict:
    """``{field: value}`` for the fields of ``config_class`` that ``args`` holds, in the types the
    dataclass takes (lists of values as tuples, ``NAME=VALUE`` pairs as a dict)."""
    hints = typing.get_type_hints(config_class)
    return {field.name: _field_value(hints[field.name], getattr(args, field.name))
            for field in dataclasses.fields(config_class) if hasattr(args, field.name)}


def config_from_args(config_class, args: argparse.Namespace, **overrides):
    """``config_class`` from parsed ``args``, ``overrides`` on top."""
    return config_class(**{**flag_values(config_class, args), **overrides})


def _default(field: dataclasses.Field):
    """The field's default (a fresh one from its factory), ``MISSING`` without one."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _without_none(annotation):
    """``X | None`` -> ``X``."""
    if isinstance(annotation, types.UnionType):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def _kind(annotation) -> dict:
    """argparse options for a field annotation."""
    annotation = _without_none(annotation)
    origin, args = typing.get_origin(annotation) or annotation, typing.get_args(annotation)
    if origin is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin in (tuple, list):
        return {"type": args[0] if args else str, "nargs": "+"}
    if origin is dict and args:
        return {"type": _name_value(args[1]), "nargs": "+", "metavar": "NAME=VALUE"}
    if origin is dict:
        return {"type": _json, "metavar": "JSON"}
    return {"type": origin}


def _field_value(annotation, value):
    """A parsed flag value as the field takes it: values of a tuple field as a tuple,
    ``NAME=VALUE`` pairs as a dict; anything else (a JSON value too) as it is."""
    if not isinstance(value, list):
        return value
    annotation = _without_none(annotation)
    kind = typing.get_origin(annotation) or annotation
    if kind is dict and typing.get_args(annotation):
        return dict(value)
    return tuple(value) if kind is tuple else value


def _help(text: str, default, options: dict) -> str:
    """``text`` and, for an optional flag with a value to show, ``(default: ...)``."""
    if options.get("required") or default is None or default in ((), [], {}):
        return text
    if isinstance(default, dict):
        shown = json.dumps(default)
    elif isinstance(default, (tuple, list)):
        shown = " ".join(map(str, default))
    else:
        shown = str(default)
    return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


def _json(text: str):
    """A JSON flag's value."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected JSON; got {text!r} ({error})") from None


def _name_value(value_type):
    """The parser of one ``NAME=VALUE`` item, the value of ``value_type``."""
    def parse(text: str) -> tuple:
        name, sign, value = text.partition("=")
        try:
            if not (name and sign):
                raise ValueError(text)
            return name, value_type(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected NAME=VALUE (VALUE a {value_type.__name__}); got {text!r}") from None
    return parse
