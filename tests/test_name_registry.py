"""haq.registry.Registry, and the two registries built on it (strategies, cost models)."""

from __future__ import annotations

import pytest

from haq.errors import CostModelError, HaqError, StrategyError
from haq.registry import Registry


class _Thing:
    pass


class _Other:
    pass


def test_add_get_names_and_unknown_names() -> None:
    loaded = []
    registry: Registry[type] = Registry("widget", HaqError, lambda: loaded.append(1))
    registry.add("b", _Thing)
    registry.add("a", _Other)
    assert registry.get("b") is _Thing and registry.names() == ["a", "b"]
    assert "a" in registry and "c" not in registry and list(registry) == ["a", "b"]
    assert loaded == [1]  # the built-ins are imported once, on first use
    with pytest.raises(HaqError, match=r"unknown widget 'c'; available: a, b"):
        registry.get("c")
    registry.remove("a")
    assert registry.names() == ["b"]


def test_a_taken_name_is_refused_and_the_same_entry_is_idempotent() -> None:
    registry: Registry[type] = Registry("widget", StrategyError)
    registry.add("x", _Thing)
    registry.add("x", _Thing)  # importing a module twice registers the same class again
    with pytest.raises(StrategyError, match=r"widget name 'x' is already registered "
                                            r"\(.*_Thing\); register .*_Other under another"):
        registry.add("x", _Other)
    assert registry.get("x") is _Thing  # the first one stays
    with pytest.raises(StrategyError, match="non-empty name"):
        registry.add(" ", _Thing)


def test_strategies_refuse_a_second_class_under_a_builtin_name() -> None:
    from haq.search import STRATEGIES, Strategy, available_strategies, register_strategy

    random_cls = STRATEGIES.get("random")

    class Impostor(Strategy):
        def run(self, problem, **kwargs):  # pragma: no cover - never registered
            raise AssertionError

    with pytest.raises(StrategyError, match="strategy name 'random' is already registered"):
        register_strategy("random")(Impostor)
    assert STRATEGIES.get("random") is random_cls and Impostor.name == ""
    assert {"haq", "random", "uniform", "ohq", "hawq", "hgq"} <= set(available_strategies())


def test_cost_models_refuse_a_second_model_under_a_builtin_name() -> None:
    from haq.cost import COST_MODELS, available, register_cost_model
    from haq.cost.bismo import BismoModel

    size_entry = COST_MODELS.get("size")
    with pytest.raises(CostModelError, match="cost model name 'size' is already registered"):
        register_cost_model("size")(BismoModel)
    assert COST_MODELS.get("size") is size_entry
    assert {"size", "bops", "bismo-edge", "bitfusion-edge"} <= set(available())
