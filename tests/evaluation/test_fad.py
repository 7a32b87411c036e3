import numpy as np
import pytest
import scipy.linalg

from timbre_transfer.evaluation.fad import embedding_statistics, fad, fad_infinity, frechet_distance


def _spd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d


def test_statistics_match_numpy_and_merge_exactly():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)) * [1, 2, 3, 4, 5, 6] + 10
    whole = embedding_statistics(x)
    np.testing.assert_allclose(whole.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(whole.cov, np.cov(x, rowvar=False), rtol=1e-10)
    streamed = embedding_statistics([x[:1], x[1:123], x[123:]])
    assert streamed.n == 500
    np.testing.assert_allclose(streamed.cov, whole.cov, rtol=1e-10)
    np.testing.assert_allclose(streamed.mean, whole.mean, rtol=1e-12)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((1, 4)), "at least 2 embedding frames, got 1"),
    (np.zeros((0, 4)), "at least 2 embedding frames, got 0"),
    (np.zeros(4), r"must be \(N, D\)"),
    (np.array([[0.0, np.nan], [1, 2]]), "NaN"),
])
def test_statistics_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        embedding_statistics(bad)


def test_closed_forms():
    # identical Gaussians: exactly 0, never a tiny negative
    rng = np.random.default_rng(1)
    s = _spd(rng, 8)
    assert frechet_distance(np.zeros(8), s, np.zeros(8), s) == pytest.approx(0.0, abs=1e-9)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s1, s2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + (2 - 3) ** 2)
    # diagonal covariances: sum of (sqrt(a) - sqrt(b))^2 plus the mean term
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = 3 * 0.5**2 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(np.zeros(3), np.diag(a), np.full(3, 0.5),
                            np.diag(b)) == pytest.approx(expected)


def test_matches_the_sqrtm_formula_and_stays_real_on_singular_covariances():
    rng = np.random.default_rng(2)
    s1, s2 = _spd(rng, 16), _spd(rng, 16)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    ref = (((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2)
           - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    # rank-deficient (fewer frames than dimensions), where sqrtm goes complex or negative
    low1, low2 = _spd(rng, 64, rank=5), _spd(rng, 64, rank=5)
    value = frechet_distance(np.zeros(64), low1, np.zeros(64), low2)
    assert isinstance(value, float) and value >= 0
    assert frechet_distance(np.zeros(64), low1, np.zeros(64), low1) == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_fad_infinity_removes_the_small_sample_bias():
    rng = np.random.default_rng(3)
    d = 16
    ref_mu, ref_cov = np.zeros(d), np.eye(d)
    eval_mu, eval_cov = np.full(d, 0.3), np.diag(np.linspace(0.5, 2.0, d))
    truth = frechet_distance(ref_mu, ref_cov, eval_mu, eval_cov)
    reference = embedding_statistics(rng.multivariate_normal(ref_mu, ref_cov, 50_000))
    x = rng.multivariate_normal(eval_mu, eval_cov, 2000)
    result = fad_infinity(reference, x, min_n=100, steps=15, seed=0)
    small_n = fad(reference, embedding_statistics(x[:100]))
    assert result.slope > 0  # FAD is biased upward at small n
    assert abs(result.value - truth) < 0.25 * abs(small_n - truth)
    assert result.sizes[0] == 100 and result.sizes[-1] == 2000 and len(result.sizes) == 15
    assert result == fad_infinity(reference, x, min_n=100, steps=15, seed=0)  # seeded
    with pytest.raises(ValueError, match="N >= 4"):
        fad_infinity(reference, x[:3])


def test_fad_command_on_synthetic_timbres(tmp_path, capsys):
    import re

    from timbre_transfer.cli import main
    from timbre_transfer.data.synthetic import write_paired_dataset

    # 10 clips x 4 s = 40 patch embeddings per folder; with fewer, the 128-d covariances are
    # too rank-deficient for the score to separate timbres from melodies
    write_paired_dataset(tmp_path / "a", n_domains=2, n_clips=10, seconds=4.0, seed=0)
    write_paired_dataset(tmp_path / "b", n_domains=2, n_clips=10, seconds=4.0, seed=1)

    def score(x, y):
        assert main(["fad", str(x), str(y)]) == 0
        out = capsys.readouterr().out
        assert "not comparable with published FAD" in out
        return float(re.search(r"FAD (\d+\.\d+)", out).group(1))

    same_timbre = score(tmp_path / "a" / "reed", tmp_path / "b" / "reed")  # other melodies
    other_timbre = score(tmp_path / "a" / "reed", tmp_path / "b" / "brass")
    assert score(tmp_path / "a" / "reed", tmp_path / "a" / "reed") == 0.0
    assert other_timbre > 3 * same_timbre > 0  # measured 92 vs 26 with 12 clips


def test_fad_command_fails_loudly(tmp_path, capsys):
    from timbre_transfer.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.wav").write_text("not audio")
    assert main(["fad", str(tmp_path / "empty"), str(tmp_path / "bad")]) == 2
    assert "no audio files" in capsys.readouterr().err
    assert main(["fad", str(tmp_path / "bad"), str(tmp_path / "bad")]) == 2
    assert "x.wav: cannot decode" in capsys.readouterr().err
    assert main(["fad", str(tmp_path / "nowhere"), str(tmp_path / "bad")]) == 2
    assert "no such folder" in capsys.readouterr().err
