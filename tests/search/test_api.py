"""haq.search end to end on a tiny model and synthetic data; the episode evaluator."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import haq
from haq.cost import Budget
from haq.data import DataSplits, TensorDataset, loader
from haq.errors import BudgetInfeasibleError
from haq.finetune import evaluate
from haq.policy import Policy, policy_from_record
from haq.quantize import QuantConfig
from haq.search import EvalConfig, FinalConfig, RescoreConfig
from haq.search._evaluator import EpisodeEvaluator
from haq.specs import extract_specs

FAST = QuantConfig(weight_clip="max", act_clip="max")  # the search, not the clip, is tested


def test_evaluator_scores_heldout_and_restores_weights_after_finetune(trained) -> None:
    model, data = trained
    specs = extract_specs(model, data.train[0][0][None])
    calibration = list(loader(data.train, 64, shuffle=True, seed=0))[:4]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ev = EpisodeEvaluator(model, specs, heldout=data.heldout, calibration=calibration,
                          quant_config=FAST, train_data=data.train, finetune_steps=3)
    w8 = ev(Policy.uniform(specs, 8, 8))
    assert abs(w8.accuracy - evaluate(model, data.heldout)) <= 3.0
    assert w8.seconds > 0
    float_after_calibration = {k: v.clone() for k, v in ev.model.state_dict().items()}
    low = Policy.uniform(specs, 2, 2)
    first, second = ev(low), ev(low)
    assert first.accuracy == second.accuracy  # fine-tune seeded by the policy, weights restored
    for key, value in ev.model.state_dict().items():  # an unset clip is NaN: equal_nan
        torch.testing.assert_close(value, float_after_calibration[key], rtol=0, atol=0,
                                   equal_nan=True, msg=key)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"the caller's model changed: {key}"


def test_search_scores_on_heldout_not_on_training_data(trained, tmp_path) -> None:
    model, data = trained
    wrong = TensorDataset(data.heldout.tensors[0], (data.heldout.tensors[1] + 1) % 4)
    bad = DataSplits("synthetic", data.train, wrong, data.test, 4, data.input_shape,
                     data.classes)
    result = haq.search(model, bad, "bops", {"bops": "0.5"}, "random", episodes=3,
                        quant_config=FAST, evaluation=EvalConfig(samples=None))
    assert result.extra["float_accuracy"] < 10.0  # held-out labels are all wrong
    assert max(h["accuracy"] for h in result.history) < 30.0


def test_search_writes_a_reloadable_best_policy_and_meets_every_budget(trained, tmp_path) -> None:
    model, data = trained
    # bismo-edge prices latency; size comes from the hardware-independent size model
    budgets = [Budget.parse("latency", "0.6"), Budget.parse("size", "0.5")]
    result = haq.search(model, data, "bismo-edge", budgets, "haq", episodes=6, warmup=3,
                        hidden=16, quant_config=FAST, run_dir=tmp_path, seed=3,
                        final=FinalConfig(epochs=1), evaluation=EvalConfig(64))
    specs = extract_specs(model, data.train[0][0][None])
    saved = Policy.load(tmp_path / "best_policy.json", specs)
    assert saved == result.best
    for budget, model_name in zip(budgets, ("bismo-edge", "size"), strict=True):
        table = haq.cost.get(model_name).table(specs)
        assert table.evaluate(saved)[budget.metric] <= budget.resolve(table)
        assert result.costs[budget.metric] == table.evaluate(saved)[budget.metric]
    assert 0.0 <= result.extra["test_accuracy"] <= 100.0
    assert (tmp_path / "final_model.pt").exists()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["identity"]["problem"]["model"] == "Sequential"
    assert len(meta["identity"]["problem"]["table_hash"]) == 24
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["best_accuracy"] == result.best_accuracy and summary["metric"] == "latency"
    assert summary["w8a8_accuracy"] == result.extra["w8a8_accuracy"]
    assert (tmp_path / "specs.json").exists() and (tmp_path / "cost_table.json").exists()
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(x)["state"] == "complete" for x in lines)


def test_an_infeasible_budget_is_refused_before_any_episode(trained, tmp_path) -> None:
    model, data = trained
    with pytest.raises(BudgetInfeasibleError, match="smallest achievable"):
        haq.search(model, data, "bismo-edge", {"latency": "0.01"}, run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_rescore_ranks_the_best_episodes_after_recovery_and_resumes(trained, tmp_path) -> None:
    from haq.runs import RESCORE
    from haq.search._rescore import candidates

    model, data = trained
    run = tmp_path / "run"
    kwargs = dict(quant_config=FAST, evaluation=EvalConfig(32), rescore=RescoreConfig(3, 2),
                  seed=1)
    result = haq.search(model, data, "bops", {"bops": "0.4"}, "random", episodes=8,
                        run_dir=run, **kwargs)
    picked = candidates(result.history, 3)
    rescored = result.extra["rescored"]
    assert [e["episode"] for e in rescored] == [r["episode"] for r in picked]
    assert len({json.dumps(r["policy"]) for r in picked}) == len(picked)  # distinct policies
    assert [r["reward"] for r in picked] == sorted((r["reward"] for r in picked), reverse=True)
    # each candidate is scored as a recovery fine-tune + the whole held-out split would score it
    specs = extract_specs(model, data.train[0][0][None])
    check = EpisodeEvaluator(model, specs, heldout=data.heldout, calibration=list(
        loader(data.train, 128, shuffle=True, seed=1))[:4], quant_config=FAST,
        train_data=data.train, finetune_steps=2, seed=1)
    winner = max(rescored, key=lambda e: (e["accuracy"], e["reward"], -e["episode"]))
    assert result.best.provenance["episode"] == winner["episode"]
    assert result.best_accuracy == winner["accuracy"] == check(result.best).accuracy
    assert Policy.load(run / "best_policy.json", specs) == result.best
    lines = (run / RESCORE).read_text().splitlines()
    assert len(lines) == len(rescored)
    again = haq.search(model, data, "bops", {"bops": "0.4"}, "random", episodes=8,
                       run_dir=run, resume=True, **kwargs)
    assert (run / RESCORE).read_text().splitlines() == lines  # nothing re-scored twice
    assert again.best == result.best
    from haq.report import report_run

    page = report_run(run).read_text()
    assert f"re-ranked the {len(rescored)} best episodes after 2 recovery steps" in page


def test_rescore_without_recovery_ranks_by_the_whole_heldout_split(trained) -> None:
    model, data = trained
    result = haq.search(model, data, "bops", {"bops": "0.4"}, "random", episodes=8,
                        quant_config=FAST, evaluation=EvalConfig(16, correction_images=64),
                        rescore=RescoreConfig(4, 0), seed=2)
    specs = extract_specs(model, data.train[0][0][None])
    whole = EpisodeEvaluator(model, specs, heldout=data.heldout, calibration=list(
        loader(data.train, 128, shuffle=True, seed=2))[:4], quant_config=FAST)
    rescored = result.extra["rescored"]
    assert len(rescored) == 4 and {e["steps"] for e in rescored} == {0}
    for entry in rescored:  # untrained: exactly what the whole split gives the policy
        policy = policy_from_record(specs, entry)
        assert entry["accuracy"] == whole(policy).accuracy
    assert result.best_accuracy == max(e["accuracy"] for e in rescored)


def test_rescore_settings_are_checked_before_the_search(trained) -> None:
    from haq.errors import ConfigError

    model, data = trained
    with pytest.raises(ConfigError, match="rescore needs"):
        haq.search(model, data, "bops", {"bops": "0.4"}, "random", episodes=2,
                   rescore=RescoreConfig(top=3, steps=-1))


def test_batchnorm_reestimate_averages_what_the_layer_sees_and_is_undone() -> None:
    from haq.search._evaluator import reestimate_batchnorm_

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                              nn.Linear(4 * 36, 3))
        batches = [(torch.randn(16, 1, 8, 8) * 2 + 1, torch.zeros(16)) for _ in range(3)]
    model.train()
    reestimate_batchnorm_(model, batches)
    with torch.no_grad():
        seen = torch.cat([model[0](x) for x, _ in batches])
    torch.testing.assert_close(model[1].running_mean, seen.mean(dim=(0, 2, 3)))
    assert model.training and model[1].momentum == 0.1  # modes and momentum given back

    specs = extract_specs(model, torch.zeros(1, 1, 8, 8))
    calibration = [(torch.randn(16, 1, 8, 8), torch.zeros(16, dtype=torch.long))] * 2
    heldout = TensorDataset(torch.randn(40, 1, 8, 8), torch.randint(0, 3, (40,)))
    ev = EpisodeEvaluator(model, specs, heldout=heldout, calibration=calibration,
                          quant_config=FAST, bn_batches=2)
    stats = ("running_mean", "running_var", "num_batches_tracked")
    before = {k: v.clone() for k, v in ev.model.state_dict().items() if k.endswith(stats)}
    ev(Policy.uniform(specs, 2, 2))
    for key, value in before.items():  # the float statistics are back after the episode
        torch.testing.assert_close(ev.model.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_episodes_go_only_to_strategies_that_run_episodes(trained, tmp_path) -> None:
    from haq.errors import ConfigError
    from haq.search import strategies_taking

    assert strategies_taking("episodes") == ["haq", "haq-ilp", "random", "uniform"]
    assert strategies_taking("preset") == ["haq", "haq-ilp"]
    model, data = trained
    with pytest.raises(ConfigError, match="runs no episodes.*haq, haq-ilp, random, uniform"):
        haq.search(model, data, "bops", {"bops": "0.5"}, "ohq", episodes=5,
                   run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()
