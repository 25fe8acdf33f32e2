"""``trainers.cli``: flags generated from a config dataclass, and every CLI's exit codes
(0 done, 2 bad input, 1 a failed run; one ``error:`` line, never a traceback)."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from trainers import cli
from trainers.config import TrainConfig
from trainers.train import TrainingDiverged

REPO = Path(__file__).resolve().parents[1]


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
    ("experiments.fullscale", ["--minutes", "soon"]),
    ("experiments.fullscale", ["--minutes", "-1", "--ledger", "{tmp}/runs.csv"]),
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
    ("experiments.fullscale", "run_plan", ["--minutes", "1", "--ledger", "{tmp}/runs.csv"]),
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


def test_a_multi_line_message_stays_one_error_line(capsys):
    def command():
        raise ValueError("bad input\n  on two lines")

    assert cli.run_cli(command) == 2
    assert capsys.readouterr().err == "error: bad input on two lines\n"


def _write_under_a_file(tmp_path):
    """Eager TensorFlow: writing into a folder that is a file (``--out metrics.json/1``)."""
    import tensorflow as tf

    (tmp_path / "metrics.json").write_text("{}")
    tf.io.write_file(str(tmp_path / "metrics.json" / "1" / "saved_model.pb"), "x")


def _read_in_a_graph(tmp_path):
    """A ``tf.function``'s op failing: the message comes after the graph's context lines."""
    import tensorflow as tf

    tf.function(tf.io.read_file)(tf.constant(str(tmp_path / "missing")))


def _out_of_device_memory(tmp_path):
    import tensorflow as tf

    raise tf.errors.ResourceExhaustedError(
        None, None, "OOM when allocating tensor with shape[4096,4096]\nHint: more details")


@pytest.mark.parametrize("command, name, message", [
    (_write_under_a_file, "FailedPreconditionError", "metrics.json is not a directory"),
    (_read_in_a_graph, "NotFoundError", "missing; No such file or directory"),
    (_out_of_device_memory, "ResourceExhaustedError", "OOM when allocating tensor"),
])
def test_tensorflow_errors_are_a_failed_run_with_one_line_saying_what_failed(
        tmp_path, capsys, command, name, message):
    assert cli.run_cli(command, tmp_path) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {name}: ") and message in err
    assert err.count("\n") == 1 and "{{" not in err and "[Op:" not in err


def test_running_out_of_memory_is_a_failed_run_with_one_line(capsys):
    def command():
        raise MemoryError("Unable to allocate 2.24 TiB for an array with shape (100000000, 32, "
                          "32, 3) and data type float64")

    assert cli.run_cli(command) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory (Unable to allocate 2.24 TiB")
    assert err.count("\n") == 1


def test_ctrl_c_is_exit_130_with_one_line_saying_how_to_pick_up_again(capsys):
    def command():
        raise KeyboardInterrupt

    assert cli.run_cli(command) == cli.INTERRUPTED == 130
    err = capsys.readouterr().err
    assert err.startswith("error: interrupted; run the same command again")
    assert err.count("\n") == 1


@pytest.mark.slow
def test_ctrl_c_during_training_ends_with_one_line_and_no_traceback(tmp_path):
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "trainers.train", "--model", "resnet8", "--dataset",
               "synthetic", "--epochs", "50", "--batch-size", "32", "--train-size", "128",
               "--test-size", "32", "--out", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "backup" / "latest.json").exists() and run.poll() is None:
            assert time.monotonic() < deadline, "no finished epoch within 240 s"
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
        run.wait(30)
    assert run.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        err.splitlines()[-1]]
    assert "run the same command again" in err.splitlines()[-1]
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("module, argv, field, value", [
    ("trainers.train", ["--model", "resnet8", "--dataset", "synthetic", "--epochs", "4",
                        "--out", "{run}"], "epochs", "4"),
    ("analysis.run", ["{run}"], "batch_size", "32"),
])
def test_a_run_folder_config_of_the_wrong_type_is_bad_input_naming_the_field(
        tmp_path, capsys, module, argv, field, value):
    run = tmp_path / "run"
    run.mkdir()
    (run / "final.keras").touch()
    saved = json.loads(TrainConfig(model="resnet8", dataset="synthetic", epochs=4,
                                   out=str(run)).to_json())
    (run / "config.json").write_text(json.dumps({**saved, field: value}))
    main = importlib.import_module(module).main
    assert main([a.format(run=run) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'config.json'}: field {field!r} is \"{value}\"")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "final.keras"]


SMALL_RUN = ["--model", "resnet8", "--dataset", "synthetic", "--epochs", "1", "--batch-size",
             "32", "--train-size", "64", "--test-size", "32"]


def test_synthetic_data_too_large_is_exit_2_with_the_estimate_and_the_limit(tmp_path, capsys):
    from trainers.train import main

    out = tmp_path / "run"
    assert main([*SMALL_RUN, "--train-size", "100000000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --train-size 100000000: synthetic data is made for at most "
                          "1,000,000 examples per split (this size would need about 8.6 TB")
    assert err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("target", ["link", "missing"])
def test_an_out_through_a_symlink_that_leads_nowhere_is_exit_2_before_any_work(
        tmp_path, capsys, target):
    from trainers.train import main

    link = tmp_path / "link"
    link.symlink_to(tmp_path / target)  # a loop (itself), or a link to nothing
    for out in (link / "run", link):
        assert main([*SMALL_RUN, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == (f"error: --out {out}: {link} is a symbolic link that leads nowhere (a "
                       f"symlink loop or a missing target); fix or remove the link, or choose "
                       f"another folder.\n")
    assert [p.name for p in tmp_path.iterdir()] == ["link"]


def _disk_full():
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(
        None, None, "saved_model.pb; No space left on device\n\t [[{{node SaveV2}}]]")


@pytest.mark.parametrize("module, function, argv", FAILED_RUN)
@pytest.mark.parametrize("error, code, message", [
    (_disk_full, 1, "error: ResourceExhaustedError: saved_model.pb; No space left on device\n"),
    (KeyboardInterrupt, 130, "error: interrupted; run the same command again"),
])
def test_every_cli_turns_a_tensorflow_error_or_ctrl_c_into_one_line(
        tmp_path, capsys, monkeypatch, module, function, argv, error, code, message):
    run = tmp_path / "finished"
    run.mkdir()
    (run / "final.keras").touch()
    (run / "config.json").write_text(TrainConfig(out=str(run)).to_json())

    def fail(*args, **kwargs):
        raise error()

    stubbed = importlib.import_module("trainers.train" if module == "analysis.record" else module)
    monkeypatch.setattr(stubbed, function, fail)
    main = importlib.import_module(module).main
    assert main([a.format(tmp=tmp_path, run=run) for a in argv]) == code
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
