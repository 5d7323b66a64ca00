"""`--data DIR|file.py:factory`, the folder options and `--metric` on every scoring command;
each mistake is one line and exit code 2. Runs the real entry point."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

NET = textwrap.dedent("""
    import torch
    from torch import nn

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 64, 10))
""")
METRICS = textwrap.dedent("""
    def mean_logit(model, loader):
        return float(sum(model(x).mean() for x, _ in loader))

    def nothing(model, loader):
        return None
""")
FACTORIES = textwrap.dedent("""
    def number():
        return 3
""")


def _digits(root, per_class=(6, 3, 3)):
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(10):
        images = digits.images[digits.target == label]
        start = 0
        for split, count in zip(("train", "val", "test"), per_class, strict=True):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray((images[start + i] * 16).astype(np.uint8)).save(
                    folder / f"{i}.png")
            start += count
    return root


@pytest.fixture(autouse=True)
def _user_files(tmp_path):
    """The user's files the commands name, in the directory ``haq`` (tests/conftest.py) runs in."""
    (tmp_path / "net.py").write_text(NET)
    (tmp_path / "metrics.py").write_text(METRICS)
    (tmp_path / "factories.py").write_text(FACTORIES)
    _digits(tmp_path / "digits")


SEARCH = ["search", "net.py:build", "--latency", "0.5", "--strategy", "random", "--episodes",
          "2", "--eval-samples", "16"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--dataset", "digits", "--data", "digits"], "give --dataset digits or --data digits, not "
                                                  "both"),
    (["--data", "nowhere"], "--data nowhere is neither a folder nor path/to/file.py:factory"),
    (["--data", "factories.py:number", "--resize", "8,8"], "--resize applies only to an image "
                                                           "folder given with --data DIR"),
    (["--data", "factories.py:number"], "factories.py:number returned int; it must return a "
                                        "dict"),
    (["--data", "digits", "--resize", "8"], "--resize '8' must be two positive integers H,W"),
    (["--data", "digits", "--grayscale", "--mean", "0.1,0.2"],
     "mean needs 1 value (grayscale), got 2"),
    (["--data", "digits", "--grayscale", "--metric", "metrics.py:nothing"],
     "metric nothing returned None; it must return one finite number"),
    (["--data", "digits", "--metric-mode", "min"], "--metric-mode applies to --metric"),
    (["--data", "digits", "--metric", "metrics.py:absent"], "has no function 'absent'"),
    (["--data", "digits"], "digits samples of shape (3, 8, 8) (C,H,W) do not fit the model"),
])
def test_data_and_metric_mistakes_are_one_line_errors(haq, extra, message) -> None:
    code, out = haq(*SEARCH, *extra)
    assert code == 2 and out.count("error: ") == 1 and "Traceback" not in out, out
    assert message in out, out


def test_broken_folders_are_one_line_errors(haq, tmp_path) -> None:
    for image in (tmp_path / "digits" / "val" / "4").iterdir():
        image.unlink()
    code, out = haq(*SEARCH, "--data", "digits", "--grayscale")
    assert code == 2 and "digits/val/4 has no image" in out, out
    broken = _digits(tmp_path / "broken")
    (broken / "train" / "0" / "0.png").write_bytes(b"\x89PNG garbage")
    code, out = haq(*SEARCH, "--data", "broken", "--grayscale")
    assert code == 2 and out.count("error: ") == 1 and "cannot read image" in out, out


def test_search_on_a_folder_with_a_min_metric(haq, tmp_path) -> None:
    code, out = haq(*SEARCH, "--data", "digits", "--grayscale", "--mean", "0.5", "--std",
                    "0.25", "--metric", "metrics.py:mean_logit", "--metric-mode", "min",
                    "--run", "run")
    assert code in (0, None), out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    quality = result["quality"]
    assert (quality["name"], quality["mode"]) == ("mean_logit", "min")
    journal = [json.loads(line) for line in (tmp_path / "run" / "journal.jsonl").open()]
    # journal scores are minus the metric; the best policy is the one with the lowest value
    assert quality["best"] == -max(r["accuracy"] for r in journal)
    assert "mean_logit (minimised)" in out
    code, out = haq("report", "run")
    assert code in (0, None), out
    page = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "| policy | held-out mean_logit | test mean_logit |" in page
    assert f"| best policy | {quality['best']:.4g} | {quality['test']:.4g} |" in page
    assert "scored by the metric `mean_logit` (minimised)" in page


@pytest.mark.slow
def test_apply_finetune_export_take_the_folder_and_metric(haq, tmp_path) -> None:
    from haq.models import create, example_input
    from haq.policy import Policy
    from haq.specs import extract_specs

    specs = extract_specs(create("resnet20-fmnist"), example_input("resnet20-fmnist"))
    Policy.uniform(specs, 8, 8).save(tmp_path / "p.json")
    folder = ["--data", "digits", "--resize", "28,28", "--grayscale"]
    code, out = haq("apply", "resnet20-fmnist", "p.json", *folder, "--metric",
                    "metrics.py:mean_logit", "--result", "apply.json", "--calib-batches", "1")
    assert code in (0, None), out
    record = json.loads((tmp_path / "apply.json").read_text())
    assert record["quality"]["name"] == "mean_logit" and record["dataset"] == "digits"
    assert "on digits/test (mean_logit, maximised)" in out
    code, out = haq("finetune", "resnet20-fmnist", "p.json", *folder, "--epochs", "1",
                    "--calib-batches", "1", "--result", "ft.json")
    assert code in (0, None), out
    assert json.loads((tmp_path / "ft.json").read_text())["dataset"] == "digits"
    code, out = haq("export", "resnet20-fmnist", "p.json", "--format", "packed", "--out",
                    "m.haq", *folder, "--calib-batches", "1")
    assert code in (0, None) and (tmp_path / "m.haq").is_file(), out
    code, out = haq("export", "resnet20-fmnist", "p.json", "--format", "packed", "--out",
                    "m2.haq", "--dataset", "digits", *folder)
    assert code == 2 and "not both" in out, out
    code, out = haq("compare", "resnet20-fmnist", "--hardware", "bismo-edge", "--latency", "0.5",
                    "--strategies", "random", "--episodes", "2", "--finetune-epochs", "0",
                    "--eval-samples", "16", "--out", "cmp", *folder, "--metric",
                    "metrics.py:mean_logit", "--metric-mode", "min")
    assert code in (0, None), out
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| name | kind | mean_logit | search mean_logit |" in table
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["quality"] == {"name": "mean_logit", "mode": "min", "unit": ""}
