"""Loss values against hand computations."""

from __future__ import annotations

import io
import math

import pytest
import torch

from timbre_transfer.losses import (
    GAN_KINDS,
    LatentCentroids,
    batch_mean_latent_loss,
    beta_warmup,
    discriminator_loss,
    generator_loss,
    kl_divergence,
    l1,
)


def close(t: torch.Tensor, value: float) -> None:
    assert t.dim() == 0
    assert t.item() == pytest.approx(value, rel=1e-6, abs=1e-7)


# --- VAE ------------------------------------------------------------------------------------

def test_kl_unit_variance_is_mean_square():
    close(kl_divergence(torch.tensor([[1.0, 2.0], [3.0, 4.0]])), (1 + 4 + 9 + 16) / 4)  # 7.5


def test_kl_gaussian_by_hand():
    mu = torch.tensor([0.0, 1.0])
    logvar = torch.tensor([0.0, math.log(2.0)])
    # per element 1 + logvar - mu^2 - exp(logvar): [1 + 0 - 0 - 1, 1 + ln2 - 1 - 2] = [0, ln2 - 2]
    expected = -0.5 * (0 + (math.log(2.0) - 2)) / 2  # (2 - ln2) / 4 = 0.32671...
    close(kl_divergence(mu, logvar), expected)
    # and it is the analytic KL(N(mu, sigma^2) || N(0, 1)) averaged per element
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    close(kl_divergence(mu, logvar), torch.distributions.kl_divergence(q, p).mean().item())
    close(kl_divergence(torch.zeros(3), torch.zeros(3)), 0.0)


def test_kl_shape_mismatch():
    with pytest.raises(ValueError, match="logvar"):
        kl_divergence(torch.zeros(2, 3), torch.zeros(3, 2))


def test_l1_by_hand():
    close(l1(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 0.0])), (1 + 0 + 3) / 3)
    with pytest.raises(ValueError, match="shapes"):
        l1(torch.zeros(2, 3), torch.zeros(3))


def test_beta_warmup():
    assert beta_warmup(0, 100) == 0.0
    assert beta_warmup(25, 100) == 0.25
    assert beta_warmup(50, 100) == 0.5
    assert beta_warmup(100, 100) == 1.0
    assert beta_warmup(1000, 100) == 1.0
    assert beta_warmup(0, 0) == 1.0
    assert beta_warmup(7, 0) == 1.0
    with pytest.raises(ValueError, match="warmup_steps"):
        beta_warmup(0, -1)


# --- adversarial ----------------------------------------------------------------------------

def test_lsgan_by_hand():
    real = torch.tensor([1.0, 0.5])
    fake = torch.tensor([0.0, 0.5])
    # D: mean((real - 1)^2) = (0 + 0.25) / 2 = 0.125; mean(fake^2) = (0 + 0.25) / 2 = 0.125; summed
    close(discriminator_loss(real, fake), 0.25)
    close(discriminator_loss(real, fake, kind="lsgan"), 0.25)
    # G: mean((fake - 1)^2) = (1 + 0.25) / 2
    close(generator_loss(fake), 0.625)


def test_bce_by_hand():
    real = torch.tensor([0.0, 2.0])
    fake = torch.tensor([-1.0, 0.0])
    # BCE(x, target 1) = log(1 + e^-x); BCE(x, target 0) = log(1 + e^x)
    d_real = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    d_fake = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    close(discriminator_loss(real, fake, kind="bce"), d_real + d_fake)
    # non-saturating G: BCE(fake, 1) = mean(log(1 + e^1), log 2)
    close(generator_loss(fake, kind="bce"), (math.log(1 + math.e) + math.log(2)) / 2)


def test_hinge_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    # relu(1 - real) = [0, 0.5, 2] -> 2.5/3; relu(1 + fake) = [0, 1, 1.5] -> 2.5/3
    close(discriminator_loss(real, fake, kind="hinge"), 5 / 3)
    # G: -mean(fake) = -(-2 + 0 + 0.5)/3 = 0.5
    close(generator_loss(fake, kind="hinge"), 0.5)


@pytest.mark.parametrize("kind", GAN_KINDS)
def test_generator_loss_pushes_fakes_towards_real(kind):
    fake = torch.zeros(2, 1, 3, 3, requires_grad=True)
    generator_loss(fake, kind).backward()
    assert (fake.grad < 0).all()  # descending the loss raises the logits


@pytest.mark.parametrize("kind", GAN_KINDS)
def test_patch_shaped_logits(kind):
    real, fake = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    assert discriminator_loss(real, fake, kind).dim() == 0
    assert generator_loss(fake, kind).dim() == 0


def test_unknown_gan_kind():
    for call in (lambda: discriminator_loss(torch.zeros(1), torch.zeros(1), kind="wgan"),
                 lambda: generator_loss(torch.zeros(1), kind="wgan")):
        with pytest.raises(ValueError, match="wgan") as info:
            call()
        assert all(k in str(info.value) for k in GAN_KINDS)


# --- latent ---------------------------------------------------------------------------------

def latent(*channels) -> torch.Tensor:
    """(B=2, C, F'=1, T'=2) latents: channel c of sample b holds the values ``channels[c][b]``."""
    mu = torch.tensor([[ch[b] for ch in channels] for b in range(2)], dtype=torch.float32)
    return mu.unsqueeze(2)


def test_latent_helper_layout():
    mu = latent([[1, 3], [5, 7]], [[2, 2], [2, 2]])
    assert mu.shape == (2, 2, 1, 2)
    assert mu[1, 0, 0].tolist() == [5.0, 7.0]


def test_centroids_estimate_commit_and_loss_by_hand():
    lc = LatentCentroids(["a", "b"], momentum=0.5)
    mu_a = latent([[1, 3], [5, 7]], [[2, 2], [2, 2]])  # channel means 4, 2
    mu_b = torch.zeros(2, 2, 1, 2)
    ca = lc.estimate(mu_a, "a")  # first batch: the batch mean itself
    cb = lc.estimate(mu_b, "b")
    assert ca.tolist() == [4.0, 2.0] and cb.tolist() == [0.0, 0.0]
    assert lc.initialized.tolist() == [False, False]  # nothing stored before commit
    close(lc.loss({"a": ca, "b": cb}), (4 + 2) / 2)  # mean |(4, 2) - (0, 0)| = 3
    lc.commit({"a": ca, "b": cb})
    assert lc.initialized.tolist() == [True, True]

    mu_a2 = latent([[2, 2], [2, 2]], [[0, 12], [4, 8]]).requires_grad_()  # means 2, 6
    ca2 = lc.estimate(mu_a2, "a")
    # value: 0.5 * stored (4, 2) + 0.5 * batch (2, 6) = (3, 4)
    assert ca2.tolist() == [3.0, 4.0]
    assert lc.centroids.tolist() == [[4.0, 2.0], [0.0, 0.0]]  # still the committed values
    close(lc.loss({"a": ca2, "b": cb}), (3 + 4) / 2)
    # gradient: the batch mean's own, 1 / (B * F' * T') = 1 / 4, not (1 - momentum) / 4
    ca2.sum().backward()
    assert torch.equal(mu_a2.grad, torch.full_like(mu_a2, 0.25))
    lc.commit({"a": ca2})
    assert lc.centroids.tolist() == [[3.0, 4.0], [0.0, 0.0]]
    assert not lc.centroids.requires_grad


def test_centroids_pooled_mean_sets_the_value_not_the_gradient():
    lc = LatentCentroids(["a", "b"], momentum=0.0, channels=2)
    mu = torch.ones(2, 2, 2, 2, requires_grad=True)
    c = lc.estimate(mu, "a", pooled_mean=torch.tensor([5.0, 7.0]))
    assert c.tolist() == [5.0, 7.0]  # the mean over all ranks
    c.sum().backward()
    assert torch.equal(mu.grad, torch.full_like(mu, 1 / 8))  # this rank's: B * F' * T' = 8


def test_centroid_loss_three_domains():
    lc = LatentCentroids(["a", "b", "c"])
    cur = {"a": torch.tensor([1.0, 1.0]), "b": torch.tensor([3.0, 1.0]),
           "c": torch.tensor([1.0, 5.0])}
    # |a-b| = (2 + 0)/2 = 1; |a-c| = (0 + 4)/2 = 2; |b-c| = (2 + 4)/2 = 3; mean of pairs = 2
    close(lc.loss(cur), 2.0)
    close(lc.loss({"a": cur["a"]}), 0.0)
    close(lc.loss({}), 0.0)
    with pytest.raises(KeyError, match="a"):
        lc.loss({"zz": cur["a"], "a": cur["a"]})


def test_centroids_state_dict_round_trip():
    lc = LatentCentroids(["a", "b", "c"], momentum=0.5)
    lc.commit({"b": lc.estimate(torch.randn(2, 3, 2, 2), "b")})
    state = lc.state_dict()
    assert set(state) == {"centroids", "initialized"}
    assert state["centroids"].shape == (3, 3)
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    fresh = LatentCentroids(["a", "b", "c"], momentum=0.5)  # lazy: width from the checkpoint
    fresh.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    assert torch.equal(fresh.centroids, lc.centroids)
    assert fresh.initialized.tolist() == [False, True, False]
    sized = LatentCentroids(["a", "b", "c"], channels=3)
    sized.load_state_dict(state, strict=True)
    assert torch.equal(sized.centroids, lc.centroids)


def test_centroid_errors():
    lc = LatentCentroids(["a", "b"])
    with pytest.raises(KeyError, match="'a', 'b'"):
        lc.estimate(torch.zeros(1, 2, 1, 1), "c")
    lc.commit({"a": lc.estimate(torch.zeros(1, 2, 1, 1), "a")})
    with pytest.raises(ValueError, match="channels"):
        lc.estimate(torch.zeros(1, 3, 1, 1), "b")
    with pytest.raises(ValueError, match="momentum"):
        LatentCentroids(["a"], momentum=1.0)
    with pytest.raises(ValueError, match="duplicate"):
        LatentCentroids(["a", "a"])


def test_batch_mean_latent_loss_by_hand():
    mu_a = torch.tensor([[[[1.0, 2.0]]], [[[3.0, 6.0]]]])  # (2, 1, 1, 2): batch mean [2, 4]
    mu_b = torch.tensor([[[[4.0, 0.0]]], [[[4.0, 0.0]]]])  # batch mean [4, 0]
    # position by position: |2 - 4| = 2, |4 - 0| = 4 -> 3 (a centroid would give |3 - 2| = 1)
    close(batch_mean_latent_loss(mu_a, mu_b), 3.0)
    # batch sizes may differ: three copies of a's mean latent match a exactly
    close(batch_mean_latent_loss(mu_a, mu_a.mean(0, keepdim=True).expand(3, -1, -1, -1)), 0.0)
    with pytest.raises(ValueError, match="latent"):
        batch_mean_latent_loss(mu_a, torch.zeros(2, 2, 1, 2))
