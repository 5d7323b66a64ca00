import numpy as np
import pytest

from haq.cost import get
from haq.policy import LayerBits, Policy


def test_size_is_weight_bits_in_bytes(tiny_specs) -> None:
    table = get("size").table(tiny_specs)
    assert table.units == {"size": "bytes"}
    policy = Policy.from_arrays(tiny_specs, [8, 4, 2, 3], [8, 8, 8, 8])
    expected = sum(s.weight_params * w / 8 for s, w in zip(tiny_specs, [8, 4, 2, 3], strict=True))
    assert table.evaluate(policy)["size"] == pytest.approx(expected)
    full = table.full_array("size")
    assert (full == full[:, :, :1]).all()  # activation bits do not matter
    fc = tiny_specs[-1]
    assert fc.weight_params == 160  # bias excluded, as in HAQ's budget
    assert full[-1, 8, 3] == 160 * 4  # float weights: 32 bits


def test_kmeans_adds_one_codebook_per_layer(tiny_specs) -> None:
    plain = get("size").table(tiny_specs).array("size")
    km = get("size", kmeans=True).table(tiny_specs)
    extra = km.array("size") - plain
    np.testing.assert_allclose(extra[:, :, 0], np.tile(2.0 ** np.arange(1, 9) * 4, (4, 1)))
    assert km.full_array("size")[0, 8, 0] == get("size").table(tiny_specs).full_array(
        "size")[0, 8, 0]


@pytest.mark.parametrize("kmeans", [False, True])
def test_overhead_adds_what_a_deployed_layer_stores(tiny_specs, kmeans) -> None:
    plain = get("size", kmeans=kmeans).table(tiny_specs).full_array("size")
    deployed = get("size", kmeans=kmeans, overhead=True).table(tiny_specs).full_array("size")
    for index, spec in enumerate(tiny_specs):
        c = spec.out_channels
        codes = np.ceil(spec.weight_params * 3 / 8) - spec.weight_params * 3 / 8
        clips = 0 if kmeans else 4 * c  # k-means: the codebook instead (already counted)
        # W3A4: codes in whole bytes, bias + weight clips per channel, input clip, flags
        assert deployed[index, 2, 3] - plain[index, 2, 3] == codes + 4 * c + clips + 4 + 1
        # float weight and float input: only the bias and the flags
        assert deployed[index, 8, 8] - plain[index, 8, 8] == 4 * c + 1


def test_bops_are_macs_times_bits(tiny_specs) -> None:
    table = get("bops", batch=3).table(tiny_specs)
    assert table.units == {"bops": "BOPs"}
    policy = Policy.from_arrays(tiny_specs, [8, 4, 2, 3], [5, 6, 7, 1])
    expected = 3 * sum(s.macs * w * a for s, w, a in zip(tiny_specs, [8, 4, 2, 3], [5, 6, 7, 1],
                                                          strict=True))
    assert table.evaluate(policy)["bops"] == expected
    policy.layers["fc"] = LayerBits(None, None)
    assert table.per_layer(policy)["bops"][-1] == 3 * tiny_specs[-1].macs * 32 * 32


def test_mobilenet_v1_float_size_matches_the_paper() -> None:
    from haq import models
    from haq.specs import extract_specs

    specs = extract_specs(models.create("mobilenetv1-imagenet"),
                          models.example_input("mobilenetv1-imagenet"))
    table = get("size").table(specs)
    float_mib = table.full_array("size")[:, 8, 8].sum() / 2**20
    assert float_mib == pytest.approx(16.14, rel=0.01)  # HAQ: MobileNet-V1 FP32 16.14 MB
    w4 = table.array("size")[:, 3, 7].sum() / 2**20
    assert w4 == pytest.approx(float_mib / 8)
