"""MODEL as ``file.py:factory`` in every command, ``--input-shape`` checked against the data
before any work, and ``--device``: run through the real entry point (exit code 2 + one line)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import haq_user_net
from haq.cost import CostTable, get
from haq.policy import Policy
from haq.specs import extract_specs

SEARCH = ["--dataset", "synthetic", "--latency", "0.6", "--strategy", "haq", "--episodes", "2",
          "--eval-samples", "8", "-p", "warmup=1", "-p", "hidden=8"]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.fixture(autouse=True)
def _net(tmp_path):
    (tmp_path / "net.py").write_text(haq_user_net.SOURCE)


def _pooled_specs(shape: tuple[int, ...]) -> list:
    return extract_specs(haq_user_net.pooled(), torch.zeros(1, *shape))


def test_specs_traces_a_model_file_at_the_given_shape(haq) -> None:
    code, out = haq("specs", "net.py:pooled", "--input-shape", "1,16,16")
    assert code == 0, out
    # the conv: 4 outputs x 9 taps x 16x16 positions, plus the 16x4 linear
    assert "total: 108 params, 9,280 MACs per image" in out
    code, bigger = haq("specs", "net.py:pooled", "--input-shape", "1,32,32")
    assert code == 0 and "36,928 MACs per image" in bigger


def test_cost_table_of_a_model_file_is_the_librarys(haq, tmp_path) -> None:
    code, out = haq("cost", "table", "net.py:pooled", "--hardware", "bismo-edge",
                    "--input-shape", "1,16,16", "--out", "t.json")
    assert code == 0, out
    saved = CostTable.load(tmp_path / "t.json")
    expected = get("bismo-edge", cache_dir=None).table(_pooled_specs((1, 16, 16)))
    assert saved.layer_names == expected.layer_names
    assert np.array_equal(saved.values["latency"], expected.values["latency"], equal_nan=True)
    assert np.isfinite(saved.values["latency"]).any()


def test_hw_profile_times_a_model_file(haq, tmp_path) -> None:
    code, out = haq("hw", "profile", "net.py:build", "--input-shape", "1,8,8", "--out",
                    "t.json", "--repeats", "1", "--warmup", "0", "--threads", "1")
    assert code == 0, out
    table = CostTable.load(tmp_path / "t.json")
    assert table.layer_names == ["0", "3"] and table.source["model"] == "net.py:build"


@pytest.mark.parametrize("args", [
    ["specs", "net.py:build"],
    ["cost", "table", "net.py:build", "--hardware", "size"],
    ["hw", "profile", "net.py:build", "--out", "t.json"],
])
def test_a_model_file_without_data_needs_an_input_shape(haq, tmp_path, args) -> None:
    code, out = haq(*args)
    assert code == 2 and out.count("error: ") == 1, out
    assert "this command has no data, so it needs --input-shape C,H,W to trace the model " \
           "net.py:build" in out
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("args", [
    ["specs", "resnet20-fmnist", "--input-shape", "3,32,32"],
    ["cost", "table", "resnet20-fmnist", "--hardware", "size", "--input-shape", "3,32,32"],
    ["search", "resnet20-fmnist", "--latency", "0.5", "--input-shape", "3,32,32"],
])
def test_a_zoo_model_refuses_another_input_shape(haq, tmp_path, args) -> None:
    code, out = haq(*args)
    assert code == 2 and "resnet20-fmnist takes inputs of 1,28,28 (C,H,W), not --input-shape " \
                         "3,32,32" in out, out
    assert not (tmp_path / "runs").exists()


def test_a_zoo_model_accepts_its_own_input_shape(haq) -> None:
    code, out = haq("specs", "resnet20-fmnist", "--input-shape", "1,28,28")
    assert code == 0 and "resnet20-fmnist: 20 quantizable layers" in out


def test_search_refuses_an_input_shape_the_data_does_not_have(haq, tmp_path) -> None:
    """The model would trace (and be priced) at 16x16 but score on 8x8 images: refused
    before any cost table, calibration or run directory."""
    code, out = haq("search", "net.py:pooled", *SEARCH, "--input-shape", "1,16,16")
    assert code == 2 and out.count("error: ") == 1, out
    assert "the model is traced at --input-shape 1,16,16 (C,H,W) but synthetic samples are " \
           "1,8,8; give --input-shape 1,8,8" in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_search_refuses_a_zoo_model_on_data_of_another_shape(haq, tmp_path) -> None:
    code, out = haq("search", "resnet20-fmnist", "--dataset", "digits", "--latency", "0.5")
    assert code == 2 and "resnet20-fmnist takes inputs of 1,28,28 (C,H,W) but digits samples " \
                         "are 1,8,8" in out, out
    assert not (tmp_path / "runs").exists()


@NO_CUDA
@pytest.mark.parametrize("command", ["search", "compare"])
def test_cuda_without_cuda_is_refused_before_any_work(haq, tmp_path, command) -> None:
    args = ["--hardware", "size", "--out", "o"] if command == "compare" else ["--run", "r"]
    code, out = haq(command, "net.py:build", "--dataset", "synthetic", "--size", "0.6",
                    "--device", "cuda", *args)
    assert code == 2 and out.count("error: ") == 1, out
    assert "device 'cuda' asked for, but this machine has no CUDA device usable by torch; use " \
           "--device cpu" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.py"]


def test_search_of_a_model_file_records_the_device(haq, tmp_path) -> None:
    code, out = haq("search", "net.py:pooled", *SEARCH, "--device", "cpu", "--run", "r")
    assert code == 0, out
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["device"] == "cpu" and result["episodes"] == 2
    assert [s["name"] for s in json.loads((tmp_path / "r" / "specs.json").read_text())] == \
        ["0", "4"]


def test_compare_runs_strategies_on_a_model_file(haq, tmp_path) -> None:
    code, out = haq("compare", "net.py:build", "--dataset", "synthetic", "--hardware", "size",
                    "--size", "0.6", "--strategies", "uniform,random", "--episodes", "2",
                    "--finetune-epochs", "0", "--eval-samples", "16", "--out", "o",
                    "--device", "cpu")
    assert code == 0, out
    rows = json.loads((tmp_path / "o" / "compare.json").read_text())
    assert {"uniform", "random"} <= {e["name"] for e in rows["entries"]}


def test_export_checks_a_model_file_at_the_datas_shape(haq, tmp_path) -> None:
    specs = extract_specs(haq_user_net.build(), torch.zeros(1, 1, 8, 8))
    Policy.uniform(specs, 4, 8).save(tmp_path / "p.json")
    code, out = haq("export", "net.py:build", "p.json", "--dataset", "synthetic", "--format",
                    "packed", "--out", "m.safetensors", "--check", "--calib-batches", "2",
                    "--device", "cpu")
    assert code == 0, out
    assert "PASS packed: same top-1 on 100.00% of 128 images" in out
    code, out = haq("export", "net.py:pooled", "p.json", "--dataset", "synthetic",
                    "--input-shape", "1,16,16", "--out", "n.onnx")
    assert code == 2 and "traced at --input-shape 1,16,16 (C,H,W) but synthetic samples" in out
    assert not (tmp_path / "n.onnx").exists()
