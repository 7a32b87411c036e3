import math

import pytest
import torch

from timbre_transfer.losses.domain_class import DomainClassifier, classification_loss, domain_labels


def _crops(tilt: float, n: int, g: torch.Generator) -> torch.Tensor:
    """``(n, 1, 32, 16)`` mels: an envelope falling by ``tilt`` from bottom to top, times a
    harmonic ripple of random spacing (the notes), plus noise."""
    bands = torch.linspace(0, 1, 32)[None, :, None]
    spacing = torch.randint(3, 9, (n, 1, 1), generator=g)
    ripple = 0.3 * torch.cos(2 * torch.pi * bands * spacing)
    return (1.0 - tilt * bands + ripple + 0.05 * torch.randn(n, 32, 16, generator=g))[:, None]


def test_a_classifier_names_bright_and_dark_envelopes_whatever_the_notes():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    clf = DomainClassifier(n_domains=2, width=8)
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3)
    labels = domain_labels(2, 16)  # domain-major: 16 bright crops, then 16 dark ones
    for _ in range(100):
        loss = classification_loss(clf(torch.cat([_crops(0.2, 16, g), _crops(1.5, 16, g)])), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = clf(torch.cat([_crops(0.2, 16, g), _crops(1.5, 16, g)]))
    assert float((logits.argmax(1) == labels).float().mean()) == 1.0
    # the generator's term is the same cross-entropy: small for a crop named as its target,
    # large for one named as another domain
    assert float(classification_loss(logits, labels)) < 0.1 * math.log(2)
    assert float(classification_loss(logits, 1 - labels)) > 10 * math.log(2)


def test_any_crop_length_and_clear_errors():
    clf = DomainClassifier(n_domains=3, width=4)
    assert clf(torch.zeros(2, 1, 128, 64)).shape == (2, 3)
    assert clf(torch.zeros(1, 1, 40, 9)).shape == (1, 3)
    with pytest.raises(ValueError, match=r"mels \(N, 1, n_mels, T\)"):
        clf(torch.zeros(2, 128, 64))
    with pytest.raises(ValueError, match="at least 2 domains"):
        DomainClassifier(n_domains=1)
