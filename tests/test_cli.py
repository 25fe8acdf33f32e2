"""``trainers.cli``: flags generated from a config dataclass, and every CLI's exit codes
(0 done, 2 bad input, 1 a failed run; one ``error:`` line, never a traceback)."""

import importlib
from dataclasses import dataclass, field

import pytest

from trainers import cli
from trainers.train import TrainingDiverged


@dataclass
class Toy:
    """A config with one field of every kind the CLIs use."""

    name: str
    count: int = 3
    rate: float = 0.5
    limit: int | None = None
    augment: bool = True
    fractions: tuple[float, ...] = (0.5, 0.75)
    rows: tuple[int, ...] | None = None
    overrides: dict = field(default_factory=dict)
    widths: dict[str, float] = field(default_factory=dict)


def parser_for(**options) -> cli.Parser:
    parser = cli.Parser(prog="toy")
    cli.add_config_flags(parser, Toy, {"count": "how many"}, **options)
    return parser


def parse(argv, **options) -> Toy:
    return cli.config_from_args(Toy, parser_for(**options).parse_args(argv))


def test_flags_take_the_dataclass_defaults():
    assert parse(["--name", "a"]) == Toy(name="a")


def test_every_kind_of_field_round_trips_from_flags_to_the_dataclass():
    toy = parse(["--name", "b", "--count", "7", "--rate", "1e-3", "--limit", "9", "--no-augment",
                 "--fractions", "0.3", "0.6", "--rows", "1", "3", "--overrides", '{"gate": -7}',
                 "--widths", "wrn=0.1", "single=0.25"])
    assert toy == Toy(name="b", count=7, rate=1e-3, limit=9, augment=False,
                      fractions=(0.3, 0.6), rows=(1, 3), overrides={"gate": -7},
                      widths={"wrn": 0.1, "single": 0.25})
    assert isinstance(toy.count, int) and isinstance(toy.fractions[0], float)
    assert parse(["--name", "c", "--augment"]).augment is True
    assert parse(["--name", "d", "--overrides", "[1, 2]"]).overrides == [1, 2]  # JSON as given


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --name"),
    (["--name", "a", "--count", "2.5"], "argument --count: invalid int value: '2.5'"),
    (["--name", "a", "--limit", "none"], "argument --limit: invalid int value"),
    (["--name", "a", "--widths", "wrn"], "expected NAME=VALUE (VALUE a float); got 'wrn'"),
    (["--name", "a", "--widths", "wrn=wide"], "expected NAME=VALUE"),
    (["--name", "a", "--overrides", "{gate"], "expected JSON; got '{gate'"),
    (["--name", "a", "--colour", "red"], "unrecognized arguments: --colour red"),
])
def test_a_refused_flag_is_a_value_error_naming_it(argv, message):
    with pytest.raises(ValueError, match="toy -h lists the flags") as raised:
        parser_for().parse_args(argv)
    assert message in str(raised.value)


def test_help_shows_the_text_and_the_defaults_worth_showing():
    help_text = " ".join(parser_for().format_help().split())
    assert "--count COUNT how many (default: 3)" in help_text
    assert "--fractions FRACTIONS [FRACTIONS ...] (default: 0.5 0.75)" in help_text
    assert "--augment, --no-augment (default: True)" in help_text
    assert help_text.endswith("--widths NAME=VALUE [NAME=VALUE ...]")  # no "(default: {})"
    assert "--limit LIMIT --augment" in help_text  # None: nothing to show


def test_fields_can_be_chosen_customised_or_left_to_the_dataclass():
    parser = parser_for(only=("name", "count", "rate"), skip=("rate",),
                        custom={"count": {"choices": [1, 2]}}, suppress_defaults=True)
    assert vars(parser.parse_args(["--name", "a"])) == {"name": "a"}
    assert cli.flag_values(Toy, parser.parse_args(["--name", "a", "--count", "2"])) == {
        "name": "a", "count": 2}
    with pytest.raises(ValueError, match="--rate"):
        parser.parse_args(["--name", "a", "--rate", "1"])
    with pytest.raises(ValueError, match="invalid choice: 3"):
        parser.parse_args(["--name", "a", "--count", "3"])


@pytest.mark.parametrize("error, code", [
    (None, 0), (ValueError("bad --rate"), 2), (TrainingDiverged("the loss became nan"), 1),
    (cli.RunFailed("writing out failed"), 1), (OSError(28, "No space left on device"), 1),
])
def test_run_cli_turns_errors_into_exit_codes_and_one_line(capsys, error, code):
    def command(argv):
        if error is not None:
            raise error

    assert cli.run_cli(command, []) == code
    err = capsys.readouterr().err
    assert err == ("" if error is None else f"error: {error}\n")


def test_another_exception_is_a_bug_and_keeps_its_traceback():
    with pytest.raises(KeyError):
        cli.run_cli(lambda: {}["missing"])


# Every CLI: bad input at the flags and at the config, both before anything runs.
BAD_INPUT = [
    ("trainers.train", ["--epochs", "two"]),
    ("trainers.train", ["--learning-rate", "nan", "--out", "{tmp}/run"]),
    ("trainers.array_fit", ["--out", "{tmp}/run"]),
    ("trainers.array_fit", ["--data-dir", "{tmp}", "--out", "{tmp}/run"]),
    ("analysis.run", ["{tmp}", "--split", "validation"]),
    ("analysis.run", ["{tmp}"]),
    ("analysis.record", ["--record-every", "one"]),
    ("analysis.record", ["--momentum=-5", "--out", "{tmp}/run"]),
    ("saved_models.export", ["{tmp}/model.keras"]),
    ("saved_models.export", ["{tmp}/missing.keras", "--out", "{tmp}/m/1"]),
    ("experiments.ablate", ["--table", "4"]),
    ("experiments.ablate", ["--table", "1", "--seeds", "0", "--out", "{tmp}/t"]),
    ("experiments.tune", ["--space", "smoke"]),
    ("experiments.tune", ["--space", "smoke", "--model", "preact20", "--out", "{tmp}/s"]),
    ("experiments.sharing", ["--depth", "twenty"]),
    ("experiments.sharing", ["--depth", "20", "--shared", "5", "--out", "{tmp}/s"]),
    ("experiments.reproduce", ["--width-of", "j18-wrn"]),
    ("experiments.reproduce", ["--figures", "fig99", "--out", "{tmp}/r"]),
]


@pytest.mark.parametrize("module, argv", BAD_INPUT)
def test_every_cli_exits_2_on_bad_input_with_one_error_line(tmp_path, capsys, module, argv):
    main = importlib.import_module(module).main
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


# Every CLI: a run that fails once started (its library function stubbed to fail).
FAILED_RUN = [
    ("trainers.train", "train", ["--dataset", "synthetic", "--out", "{tmp}/run"]),
    ("trainers.array_fit", "load_cifar", ["--data-dir", "{tmp}", "--out", "{tmp}/run"]),
    ("analysis.run", "analyze_run", ["{run}"]),
    ("analysis.record", "train", ["--dataset", "synthetic", "--out", "{tmp}/run"]),
    ("saved_models.export", "export", ["{tmp}/model.keras", "--out", "{tmp}/m/1"]),
    ("experiments.ablate", "run_ablation", ["--table", "1", "--out", "{tmp}/t"]),
    ("experiments.tune", "run_sweep", ["--space", "smoke", "--out", "{tmp}/s"]),
    ("experiments.sharing", "run_sharing", ["--depth", "20", "--shared", "2"]),
    ("experiments.reproduce", "reproduce", ["--figures", "cosine"]),
]


@pytest.mark.parametrize("module, function, argv", FAILED_RUN)
def test_every_cli_exits_1_when_the_run_fails(tmp_path, capsys, monkeypatch, module, function,
                                              argv):
    run = tmp_path / "finished"
    run.mkdir()
    for name in ("final.keras", "config.json"):
        (run / name).touch()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    stubbed = importlib.import_module("trainers.train" if module == "analysis.record" else module)
    monkeypatch.setattr(stubbed, function, fail)
    main = importlib.import_module(module).main
    assert main([a.format(tmp=tmp_path, run=run) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "No space left on device" in err
    assert err.count("\n") == 1 and "Traceback" not in err
