"""PadCFG branches and the feature discriminator."""

from __future__ import annotations

import pytest
import torch

from trtsr.models.checkpoint import build_preset, load_model
from trtsr.training.losses import discriminator_loss, gaussian_blur
from trtsr.training.networks import TRAIN_RESERVE, FeatureDiscriminator, plain_branch


def test_branches_mix_to_exactly_what_restore_returns():
    model = build_preset("tiny").eval()
    x = torch.rand(2, 3, 70, 90) * 2 - 1  # not aligned: the branches pad like restore does
    with torch.no_grad():
        pos, neg = model.padcfg_branches(x)
        for w in (1.0, 1.8):
            assert torch.allclose(w * pos + (1 - w) * neg, model.restore(x, w), atol=1e-6)
        assert torch.equal(plain_branch(model, x), model.restore(x, None, reserve=TRAIN_RESERVE))


@pytest.mark.parametrize("detail_head", [False, True])
def test_discriminator_reads_every_encoder_level_and_trains_only_heads(detail_head):
    model = build_preset("tiny")
    disc = FeatureDiscriminator(model, detail_head=detail_head)
    image = (torch.rand(2, 3, 136, 104) * 2 - 1).requires_grad_(True)
    logits = disc(image)
    levels = int(detail_head) + 1 + len(model.unet.down_blocks) + 1  # (detail), conv_in, down blocks, mid block
    assert len(logits) == levels
    assert logits[0].shape == logits[int(detail_head)].shape == (2, 1, 17, 13)  # detail and conv_in: 1/8 size
    assert len(disc.heads[0]) == (5 if detail_head else 3)  # the detail head has two 3x3 convs
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


def test_detail_head_learns_sharp_from_blurred(photo):
    """Heads-only training on real 64-px crops against their blur (sigma 1), scored on crops from the
    other half of the photo: the head on the unshuffled high-frequency residual separates them within
    100 steps (the shipped student's encoder-feature heads stay near chance here; see its card)."""
    image = photo * 2 - 1
    height, width = image.shape[-2:]
    generator = torch.Generator().manual_seed(0)

    def crops(count: int, left: int, right: int) -> torch.Tensor:
        ys = torch.randint(0, height - 64, (count,), generator=generator).tolist()
        xs = torch.randint(left, right - 64, (count,), generator=generator).tolist()
        return torch.stack([image[:, y:y + 64, x:x + 64] for y, x in zip(ys, xs, strict=True)])

    torch.manual_seed(0)
    disc = FeatureDiscriminator(load_model("default"), detail_head=True)
    opt = torch.optim.Adam(disc.heads.parameters(), lr=1e-3, betas=(0.5, 0.99))
    for _ in range(100):
        sharp = crops(8, 0, width // 2)
        loss = discriminator_loss(disc(sharp), disc(gaussian_blur(sharp, 1.0)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    held = crops(64, width // 2, width)
    with torch.no_grad():
        real, fake = disc(held), disc(gaussian_blur(held, 1.0))
    accuracy = [float((r.mean((1, 2, 3)) > 0).float().mean() + (f.mean((1, 2, 3)) < 0).float().mean()) / 2
                for r, f in zip(real, fake, strict=True)]
    assert accuracy[0] >= 0.9, accuracy
