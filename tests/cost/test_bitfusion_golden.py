"""BitFusion re-implementation vs records produced by the original simulator (exact)."""

import json
from pathlib import Path

import pytest

from haq.cost.bitfusion import simulate_layer

GOLDEN = Path(__file__).parents[1] / "data" / "bitfusion_golden.jsonl"
RECORDS = [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]


def test_golden_file_is_complete() -> None:
    assert len(RECORDS) == 240
    assert {(r["config"], r["batch"]) for r in RECORDS} == {("bf_e", 1), ("bf_e", 16),
                                                            ("bf_s", 16)}


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: (
    f"{r['config']}-b{r['batch']}-{r['layer']}-a{r['a_bits']}w{r['w_bits']}"))
def test_matches_original_simulator(rec: dict) -> None:
    got = simulate_layer(rec["K"], rec["O"], rec["S"], rec["IC"], rec["OC"], rec["a_bits"],
                         rec["w_bits"], batch=rec["batch"], im2col=rec["im2col"],
                         config=rec["config"])
    assert got["cycles"] == rec["cycles"]
    assert got["mem_stall_cycles"] == rec["mem_stall_cycles"]
    assert got["reads"] == rec["reads"]
    assert got["writes"] == rec["writes"]
    assert got["energy_nJ"] == pytest.approx(rec["energy_nJ"], rel=1e-6)
