"""Latent alignment: pull the domains' latent distributions together.

The paper (Eq. 5-6) penalises the L1 distance between each domain's latent centroid; a batch of
a few crops gives a noisy centroid, so :class:`LatentCentroids` keeps running averages for the
loss's value while the gradient flows through the current batch at the loss's full weight. The
reference code's variant, :func:`batch_mean_latent_loss`, compares two batches' mean latents
position by position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import torch
from torch import nn

from timbre_transfer.models.multidomain import validate_domains


class LatentCentroids(nn.Module):
    """Running per-domain centroids of the latent mean, and the L1 loss between them.

    Buffers (saved in ``state_dict``):
        centroids: ``(n_domains, C)`` exponential moving averages of each domain's mean ``mu``
            (mean over batch, F' and T').
        initialized: ``(n_domains,)`` bool, whether a domain has been seen.

    Args:
        domains: domain names, in the model's order.
        momentum: weight of the stored average in each update, in [0, 1); 0 = batch mean only.
        channels: C; when None (default) the buffers take their size from the first
            :meth:`estimate` or from a loaded ``state_dict``.

    All updates stay on the device: no host synchronisation.
    """

    centroids: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, domains: Sequence[str], momentum: float = 0.99, channels: int | None = None):
        super().__init__()
        self.domains = validate_domains(domains, "LatentCentroids")
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self._index = {d: i for i, d in enumerate(self.domains)}
        n = len(self.domains)
        self.register_buffer("centroids", torch.zeros(n, channels or 0))
        self.register_buffer("initialized", torch.zeros(n, dtype=torch.bool))

    def _domain_index(self, domain: str) -> int:
        if domain not in self._index:
            raise KeyError(f"unknown domain {domain!r}; known domains are {self.domains}")
        return self._index[domain]

    def estimate(self, mu: torch.Tensor, domain: str,
                 pooled_mean: torch.Tensor | None = None) -> torch.Tensor:
        """This step's ``(C,)`` centroid of ``domain`` from a batch ``mu`` ``(B, C, F', T')``;
        nothing is stored until :meth:`commit`.

        Value: ``momentum * stored + (1 - momentum) * batch_mean`` (``batch_mean`` for a
        domain's first batch), a low-noise estimate. Gradient: that of ``batch_mean`` itself
        (straight-through). Were the gradient to flow only through ``(1 - momentum) *
        batch_mean``, a weight of 10 at momentum 0.99 would act like 0.1; this way the latent
        loss acts at its stated weight, pointed by the running centroids.

        ``pooled_mean``: the batch mean over all processes (detached) under data parallelism,
        so that every rank keeps the same centroids; the gradient stays this rank's.
        """
        i = self._domain_index(domain)
        if mu.dim() < 2:
            raise ValueError(f"mu must be (B, C, ...), got shape {tuple(mu.shape)}")
        batch_mean = mu.mean(dim=[d for d in range(mu.dim()) if d != 1])
        self._fit_width(batch_mean)
        observed = batch_mean.detach() if pooled_mean is None else pooled_mean.detach()
        stored = self.centroids[i].to(batch_mean.dtype)
        w = self.initialized[i].to(batch_mean.dtype) * self.momentum  # 0 when unseen
        value = w * stored + (1 - w) * observed.to(batch_mean.dtype)
        return value + (batch_mean - batch_mean.detach())

    def _fit_width(self, centroid: torch.Tensor) -> None:
        c = centroid.shape[0]
        if self.centroids.shape[1] == 0:
            # lazy size: the owner need not know the latent width
            self.centroids = torch.zeros(len(self.domains), c, device=centroid.device)
        elif self.centroids.shape[1] != c:
            raise ValueError(f"mu has {c} channels, the centroids have {self.centroids.shape[1]}")

    @torch.no_grad()
    def commit(self, current: Mapping[str, torch.Tensor]) -> None:
        """Store this step's estimates (from :meth:`estimate`). The trainer calls it only once
        the step's losses are known to be finite, so one NaN cannot poison the averages."""
        for domain, value in current.items():
            i = self._domain_index(domain)
            self._fit_width(value)
            self.centroids[i] = value.detach().to(self.centroids.dtype)
            self.initialized[i] = True

    def loss(self, current: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Mean over domain pairs of the L1 (mean absolute) distance between their ``(C,)``
        centroids, e.g. the values :meth:`estimate` returned this step. Zero for fewer than two."""
        for d in current:
            self._domain_index(d)
        values = list(current.values())
        if len(values) < 2:
            ref = values[0] if values else self.centroids
            return torch.zeros((), device=ref.device, dtype=ref.dtype)
        pairs = [(a - b).abs().mean() for a, b in combinations(values, 2)]
        return torch.stack(pairs).mean()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # A fresh (lazy) module has (n, 0) centroids: adopt the saved width before loading.
        saved = state_dict.get(prefix + "centroids")
        if (saved is not None and self.centroids.shape[1] == 0
                and saved.dim() == 2 and saved.shape[0] == self.centroids.shape[0]):
            self.centroids = torch.zeros_like(saved, device=self.centroids.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f"domains={self.domains}, momentum={self.momentum}"


def batch_mean_latent_loss(mu_a: torch.Tensor, mu_b: torch.Tensor) -> torch.Tensor:
    """The reference code's latent loss: L1 (mean absolute difference) between the two batches'
    mean latents, averaged over the batch only, so ``(C, F', T')`` is compared position by
    position. ``mu_a`` ``(B_a, C, F', T')`` and ``mu_b`` ``(B_b, C, F', T')``."""
    if mu_a.shape[1:] != mu_b.shape[1:]:
        raise ValueError(f"latent shapes differ: {tuple(mu_a.shape)} vs {tuple(mu_b.shape)}")
    return (mu_a.mean(dim=0) - mu_b.mean(dim=0)).abs().mean()
