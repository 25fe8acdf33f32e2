"""TF_CONFIG, the multi-worker cluster description: a malformed one is bad input (exit 2, one
line saying what is wrong and the shape expected) wherever it is first read."""

import json

import pytest

from trainers import train as train_lib
from trainers.strategy import is_chief, make_strategy

CLUSTER = {"worker": ["a:1", "b:2"]}
MALFORMED = [
    ("[1, 2]", "it is a JSON list, not an object"),
    ("{not json", "it is not JSON"),
    ("7", "it is a JSON int, not an object"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), 'its "cluster" is null'),
    (json.dumps({"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}),
     'its "cluster" is {"worker": "a:1"}'),
    (json.dumps({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}),
     "non-empty list"),
    (json.dumps({"cluster": CLUSTER}), 'its "task" is null'),
    (json.dumps({"cluster": CLUSTER, "task": [0]}), 'its "task" is [0]'),
    (json.dumps({"cluster": CLUSTER, "task": {"index": 0}}), "its task type null is not a job"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": ["worker"], "index": 0}}),
     'its task type ["worker"] is not a job'),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "ps", "index": 0}}),
     'its task type "ps" is not a job of the cluster (worker)'),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker"}}), "its task index null"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": "0"}}),
     'its task index "0"'),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 2}}),
     "its task index 2 is not a position in the 2 worker addresses (0 to 1)"),
]


@pytest.mark.parametrize("text, problem", MALFORMED)
def test_a_malformed_tf_config_is_refused_saying_what_is_wrong_and_the_shape(
        monkeypatch, text, problem):
    monkeypatch.setenv("TF_CONFIG", text)
    for read in (is_chief, lambda: make_strategy("multiworker")):
        with pytest.raises(ValueError) as raised:
            read()
        message = str(raised.value)
        assert message.startswith("TF_CONFIG is not valid: ") and problem in message
        assert '"cluster": {"worker": ["host1:12345"' in message  # the shape expected


@pytest.mark.parametrize("text", ["[1,2]", '{"cluster": {"worker": ["a:1"]}}'])
def test_the_trainer_exits_2_on_a_malformed_tf_config_before_writing(
        tmp_path, capsys, monkeypatch, text):
    monkeypatch.setenv("TF_CONFIG", text)
    out = tmp_path / "run"
    assert train_lib.main(["--model", "resnet8", "--dataset", "synthetic", "--epochs", "1",
                           "--strategy", "multiworker", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: TF_CONFIG is not valid: ") and err.count("\n") == 1
    assert "Traceback" not in err and not out.exists()
