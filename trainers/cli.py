"""One command-line convention for every CLI: flags generated from a config dataclass, and
one set of exit codes (a CLI parses flags into a config and calls one function).

    parser = cli.Parser(prog="python -m experiments.sharing")
    cli.add_config_flags(parser, SharingConfig, HELP)
    config = cli.config_from_args(SharingConfig, parser.parse_args(argv))

A field ``batch_size: int | None`` becomes ``--batch-size N``; a ``bool`` ``--x/--no-x``; a
``tuple[float, ...]`` ``--x A B ...``; a bare ``dict`` one JSON value; a ``dict[str, float]``
``--x NAME=VALUE ...``. Exit codes (``run_cli``), the same for every CLI: 0 done; 2 bad input (a
``ValueError``, a refused flag included), one ``error:`` line on stderr; 1 a run that started
and failed (``RunFailed``, e.g. a diverged training run, an ``OSError`` such as a failed write,
a ``MemoryError``, or a TensorFlow ``OpError`` such as ``NotFoundError``), one ``error:`` line;
130 interrupted (Ctrl-C), one line saying that the same command picks up again. Never a
traceback. Standard library only: ``trainers.array_fit`` runs where there is no TensorFlow, so
TensorFlow's errors are recognised by their class, not imported.
"""

import argparse
import dataclasses
import json
import re
import sys
import types
import typing

INTERRUPTED = 130  # the shell's exit status for a process ended by SIGINT (128 + 2)
# TensorFlow's op errors print their graph's context around the message: these lines (and
# indented stack lines) are context; the ``{{function_node ...}}`` prefix and ``[Op:...]``
# suffix of the message line are too.
TF_CONTEXT_LINE = re.compile(r"Graph execution error:|Detected at node ")
TF_DECORATIONS = re.compile(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\]$")


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
    1 for ``RunFailed``, ``OSError``, ``MemoryError`` or a TensorFlow op error (a failed run:
    TensorFlow ops run only once the input is checked), 130 for Ctrl-C; each one line, no
    traceback. Any other exception is a bug and keeps its traceback."""
    try:
        command(*args)
    except KeyboardInterrupt:
        return _report("interrupted; run the same command again to pick up where it stopped "
                       "(a training run resumes from its last finished epoch)", INTERRUPTED)
    except ValueError as error:
        return _report(_one_line(str(error)), 2)
    except (RunFailed, OSError) as error:
        return _report(_one_line(str(error)), 1)
    except MemoryError as error:
        return _report(f"out of memory ({_one_line(str(error)) or 'MemoryError'}); use smaller "
                       f"sizes or a machine with more memory", 1)
    except Exception as error:
        if not is_tensorflow_error(error):
            raise
        return _report(f"{type(error).__name__}: {tensorflow_message(error)}", 1)
    return 0


def _report(message: str, code: int) -> int:
    """Print ``message`` as the one ``error:`` line and return ``code``."""
    print(f"error: {message}", file=sys.stderr)
    return code


def _one_line(text: str) -> str:
    """``text`` on one line: its lines joined by spaces, so the ``error:`` line stays one."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def is_tensorflow_error(error: BaseException) -> bool:
    """Whether ``error`` is a ``tf.errors.OpError`` (``NotFoundError``,
    ``ResourceExhaustedError``, ...), told by its classes so TensorFlow is never imported."""
    return any(kind.__name__ == "OpError" and kind.__module__.startswith("tensorflow")
               for kind in type(error).__mro__)


def tensorflow_message(error: BaseException) -> str:
    """The first line of a TensorFlow error that says what went wrong: its graph context
    (``Graph execution error:``, the node and its stack) and op decorations left out."""
    for line in str(error).splitlines():
        if line.strip() and not line[0].isspace() and not TF_CONTEXT_LINE.match(line):
            return TF_DECORATIONS.sub("", line.strip())
    return type(error).__name__


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
