"""PadCFG branches and the feature discriminator."""

from __future__ import annotations

import torch

from trtsr.models.checkpoint import build_preset
from trtsr.training.networks import FeatureDiscriminator, plain_branch


def test_branches_mix_to_exactly_what_restore_returns():
    model = build_preset("tiny").eval()
    x = torch.rand(2, 3, 70, 90) * 2 - 1  # not aligned: the branches pad like restore does
    with torch.no_grad():
        pos, neg = model.padcfg_branches(x)
        for w in (1.0, 1.8):
            assert torch.allclose(w * pos + (1 - w) * neg, model.restore(x, w), atol=1e-6)
        assert torch.equal(plain_branch(model, x), model.restore(x, None))


def test_discriminator_reads_every_encoder_level_and_trains_only_heads():
    model = build_preset("tiny")
    disc = FeatureDiscriminator(model)
    image = (torch.rand(2, 3, 136, 104) * 2 - 1).requires_grad_(True)
    logits = disc(image)
    levels = 1 + len(model.unet.down_blocks) + 1
    assert len(logits) == levels
    assert logits[0].shape == (2, 1, 17, 13)  # conv_in works at 1/8 of the image
    trainable = {n for n, p in disc.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("heads.") for n in trainable)
    sum(t.mean() for t in logits).backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0  # the generator gets a signal
    frozen = [p for n, p in disc.named_parameters() if not n.startswith("heads.")]
    assert all(p.grad is None for p in frozen)


def test_discriminator_features_are_a_snapshot():
    model = build_preset("tiny")
    disc = FeatureDiscriminator(model)
    before = [f.detach().clone() for f in disc.features(torch.zeros(1, 3, 64, 64))]
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_(0.1)  # the student moves on; the discriminator's copy must not
    after = disc.features(torch.zeros(1, 3, 64, 64))
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
