"""analysis.record: the trainer's command with Jastrzebski et al.'s measurements recorded."""

import re
import types

import pandas as pd
import pytest

from analysis import record
from analysis.callback import IterativeInferenceCallback, recording_callbacks
from trainers.config import TrainConfig
from trainers.train import make_parser


def listed_options(help_text: str) -> set[str]:
    """The option strings a ``--help`` text lists: the lines of its options section that
    start with ``-``, up to their description."""
    options = help_text.split("\noptions:\n", 1)[1]
    invocations = re.findall(r"^  (-.*?)(?:  |$)", options, flags=re.MULTILINE)
    return {option for text in invocations
            for option in re.findall(r"(?<![\w-])--?[a-z][\w-]*", text)}


def test_takes_every_flag_of_the_trainer_and_record_every(capsys):
    """The trainer has no --record-every (training alone never measures); this command has
    the trainer's flags and that one."""
    with pytest.raises(SystemExit):
        record.main(["--help"])
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: python -m analysis.record ")
    trainer = listed_options(make_parser().format_help())
    assert {"--model-overrides", "--no-augment", "--init-from"} <= trainer
    assert "--record-every" not in trainer
    assert listed_options(help_text) == trainer | {"--record-every"}


def test_a_config_that_does_not_record_gets_no_callback(tmp_path):
    assert recording_callbacks(TrainConfig(record_every=0), data=None, run_dir=tmp_path) == []


@pytest.mark.slow
def test_records_both_splits_every_epoch_of_a_run(tmp_path):
    out = tmp_path / "run"
    assert record.main(["--model", "resnet8", "--dataset", "synthetic", "--epochs", "2",
                        "--batch-size", "32", "--train-size", "128", "--test-size", "64",
                        "--record-every", "1", "--out", str(out)]) == 0
    table = pd.read_csv(out / "iterative_inference.csv")
    assert sorted(table["epoch"].unique()) == [0, 1, 2]
    assert set(table["split"]) == {"train", "test"}
    assert (out / "iterative_inference.png").is_file()
    assert TrainConfig.load(out / "config.json").record_every == 1


class Split:
    """A stand-in for a ``tf.data`` split: the recorder only takes its first batches."""

    def take(self, count):
        return f"first {count} batches"


def test_the_recorder_measures_every_record_every_epochs(tmp_path):
    data = types.SimpleNamespace(train=Split(), test=Split())
    callbacks = recording_callbacks(TrainConfig(record_every=3), data, tmp_path)
    assert [type(c) for c in callbacks] == [IterativeInferenceCallback]
    assert callbacks[0].every == 3 and callbacks[0].out_dir == tmp_path
    assert callbacks[0].batches == {"train": "first 4 batches", "test": "first 4 batches"}
