"""A user's mistake ends in one line `error: ...` and exit code 2, never a traceback or a
silently wrong answer. Each case runs the real entry point (`haq.cli.__main__.main`)."""

from __future__ import annotations

import json
import textwrap

import pytest

from haq.cost import get
from haq.specs import extract_specs

MODELS = textwrap.dedent("""
    import torch
    from torch import nn

    def build(channels=1, classes=4):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 64, classes))

    def rgb():
        return build(channels=3)

    def two_classes():
        return build(classes=2)

    def broken():
        raise RuntimeError("weights.pt not found")
""")


@pytest.fixture(autouse=True)
def _models(tmp_path):
    (tmp_path / "net.py").write_text(MODELS)


SEARCH = ["--dataset", "synthetic", "--latency", "0.6", "--strategy", "haq", "--episodes", "1",
          "--eval-samples", "8", "-p", "warmup=1", "-p", "hidden=8"]


@pytest.mark.parametrize(("model", "extra", "message"), [
    ("bad.py:build", [], "cannot import bad.py: SyntaxError: invalid syntax (bad.py, line 1); "
                         "fix the file"),
    ("net.py:broken", [], "net.py:broken() raised RuntimeError: weights.pt not found; fix the "
                          "factory"),
    ("net.py:build", ["--input-shape", "3,8,8"], "--input-shape 3,8,8 does not fit the model "
                                                 "(RuntimeError: Given groups=1"),
    ("net.py:rgb", [], "synthetic samples of shape (1, 8, 8) (C,H,W) do not fit the model"),
    ("net.py:two_classes", [], "synthetic train split has label 3, but the model has 2 outputs "
                               "(labels 0-1)"),
    ("net.py:build", ["--latency", "0.9"], "--latency given 2 times (0.6, 0.9); give each "
                                           "budget once"),
    ("net.py:build", ["--allow-reuse"], "--allow-reuse needs --input-shape"),
    ("net.py:build", ["--hardware", "table", "--param", "path=t.csv"],
     "--param path is a setting of the cost model 'table', but --param sets the strategy; pass "
     "--hw-param path=t.csv"),
    ("net.py:build", ["--run", "net.py"], "run directory net.py is a file; give a directory"),
    ("net.py:build", ["--finetune-epochs", "1", "--finetune-distill", "2"],
     "distill must be a weight in [0, 1], got 2.0"),
])
def test_search_mistakes_are_one_line_errors(haq, tmp_path, model, extra, message) -> None:
    (tmp_path / "bad.py").write_text("def build(:\n")
    code, out = haq("search", model, *SEARCH, *extra)
    assert code == 2 and out.count("error: ") == 1, out
    assert message in out.split("error: ")[1] and "Traceback" not in out
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_a_folder_of_user_files_is_refused_and_left_alone(haq, tmp_path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "result.json").write_text('{"mine": 1}')
    code, out = haq("search", "net.py:build", *SEARCH, "--run", "mine")
    assert code == 2 and "mine holds files that are not a haq run (result.json)" in out
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["result.json"]
    assert (tmp_path / "mine" / "result.json").read_text() == '{"mine": 1}'


def test_hw_param_reaches_the_cost_model(haq, tmp_path) -> None:
    import torch

    from haq.cli._model_options import _load_factory

    net = _load_factory(f"{tmp_path / 'net.py'}:build")
    specs = extract_specs(net, torch.zeros(1, 1, 8, 8))
    get("bismo-edge", cache_dir=None).table(specs).save(tmp_path / "t.csv")
    code, out = haq("search", "net.py:build", *SEARCH, "--hardware", "table", "--hw-param",
                    "path=t.csv", "--run", "r")
    assert code == 0, out
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["identity"]["problem"]["cost_model"]["params"]["path"] == "t.csv"


def test_a_policy_or_cost_table_that_is_not_utf8_is_a_one_line_error(haq, tmp_path) -> None:
    (tmp_path / "p.json").write_bytes('{"note": "é"}'.encode("latin-1"))
    code, out = haq("cost", "table", "mobilenetv1-fmnist", "--hardware", "size", "--policy",
                    "p.json")
    assert code == 2 and "policy file p.json is not UTF-8 text (invalid continuation byte at " \
                         "byte 10); save it as UTF-8 JSON" in out
    (tmp_path / "t.csv").write_bytes("# units: latency=µs\n".encode("latin-1"))
    code, out = haq("cost", "table", "mobilenetv1-fmnist", "--hardware", "table", "-p",
                    "path=t.csv")
    assert code == 2 and "t.csv is not UTF-8 text" in out and "Traceback" not in out


def test_runs_repair_moves_only_a_cut_last_line(haq, tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "meta.json").write_text("{}")
    (run / "journal.jsonl").write_text('{"episode":0}\n{"episode":1}\n{"episode":2,"acc\n')
    code, out = haq("runs", "repair", "run")
    assert code == 0 and "2 whole episodes kept" in out and "--resume" in out
    assert (run / "journal.jsonl").read_text() == '{"episode":0}\n{"episode":1}\n'
    assert (run / "journal.jsonl.torn").read_text() == '{"episode":2,"acc\n'
    code, out = haq("runs", "repair", "run")
    assert code == 0 and "is whole (2 episodes); nothing to repair" in out
    code, out = haq("runs", "repair", "elsewhere")
    assert code == 2 and "elsewhere is not a haq run directory" in out


def test_allow_reuse_lets_a_shared_layer_be_searched(haq, tmp_path) -> None:
    (tmp_path / "shared.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Twice(nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(0)
                self.conv = nn.Conv2d(1, 1, 3, padding=1)
                self.head = nn.Linear(64, 4)

            def forward(self, x):
                return self.head(self.conv(self.conv(x)).flatten(1))

        def build():
            return Twice()
    """))
    args = ["search", "shared.py:build", *SEARCH, "--input-shape", "1,8,8", "--run", "r"]
    code, out = haq(*args)
    assert code == 2 and "pass allow_reuse=True (CLI: --allow-reuse with --input-shape)" in out
    code, out = haq(*args, "--allow-reuse")
    assert code == 0, out
    assert [s["name"] for s in json.loads((tmp_path / "r" / "specs.json").read_text())] == \
        ["conv", "head"]
