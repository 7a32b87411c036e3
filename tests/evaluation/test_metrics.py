import numpy as np
import pytest
import torch

from timbre_transfer.audio.io import load_audio
from timbre_transfer.audio.transform import AudioTransform
from timbre_transfer.data.synthetic import paired_files, random_score, render, write_paired_dataset
from timbre_transfer.evaluation.metrics import twin_distance


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_paired_dataset(root, n_domains=3, n_clips=2, seconds=2.0)
    return paired_files(root)


def _wav(path):
    return torch.from_numpy(load_audio(path, 16000))


def test_twin_distance_ranks_transfers(twins):
    t = AudioTransform()
    clip = twins["clip_0000"]
    target = _wav(clip["brass"])
    assert twin_distance(target, target, t) == 0.0
    # the identity "transfer" (source left untouched) is farther from the twin than a render
    # of the right timbre and score that differs only in its breath-noise seed
    score = random_score(np.random.default_rng(7), 2.0)
    a, b = render(score, "brass", seed=1), render(score, "brass", seed=2)
    noise_only = twin_distance(torch.from_numpy(a), torch.from_numpy(b), t)
    identity = twin_distance(_wav(clip["reed"]), target, t)
    other_score = twin_distance(_wav(twins["clip_0001"]["brass"]), target, t)
    assert noise_only < 0.3 * identity
    assert noise_only < 0.3 * other_score


def test_twin_distance_uses_the_shorter_clip_and_rejects_empty():
    t = AudioTransform()
    x = torch.randn(16000) * 0.1
    assert twin_distance(x, x[:8000], t) == pytest.approx(
        float((t(x)[:, :63] - t(x[:8000])[:, :63]).abs().mean()))
    with pytest.raises(ValueError, match="empty"):
        twin_distance(torch.zeros(0), x, t)
