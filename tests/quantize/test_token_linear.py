"""Linear layers applied to every token ([B, N, D] inputs): wrapping, calibration, SQNR."""

from __future__ import annotations

import torch

from haq.models._blocks import init_weights
from haq.models.vit import VisionTransformer
from haq.policy import Policy
from haq.quantize import apply_policy_, quantized_layers, sqnr_db, strip_
from haq.specs import extract_specs


def _vit() -> VisionTransformer:
    model = VisionTransformer(10, image_size=32, patch=8, dim=32, depth=2, heads=2)
    init_weights(model, torch.Generator().manual_seed(0))
    return model.eval()


def test_vit_wraps_every_linear_and_calibrates_each_token() -> None:
    model = _vit()
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(4, 3, 32, 32, generator=gen) for _ in range(2)]
    specs = extract_specs(model, batches[0][:1])
    with torch.no_grad():
        reference = model(batches[0])
    apply_policy_(model, Policy.uniform(specs, 8, 8), batches)
    assert set(quantized_layers(model)) == {s.name for s in specs} and len(specs) == 10
    fc1 = model.blocks[1].mlp.fc1
    tokens = 4 * 4 + 1  # 16 patches + the class token
    # statistics saw every token of every calibration image: 2 batches x 4 images x 17 x 32
    assert fc1.act_quant.stats.count == 2 * 4 * tokens * 32
    assert model.embed.act_quant.stats.count == 2 * 4 * 16 * 3 * 8 * 8
    with torch.no_grad():
        w8a8 = model(batches[0])
        apply_policy_(model, Policy.uniform(specs, 3, 3))
        w3a3 = model(batches[0])
    assert sqnr_db(reference, w8a8) > 30 > sqnr_db(reference, w3a3)
    with torch.no_grad():
        assert torch.equal(strip_(model)(batches[0]), reference)
