"""Model shapes, weight sharing, sampling, initialisation, errors and checkpoints."""

from __future__ import annotations

import io

import pytest
import torch

from timbre_transfer.models import (
    Encoded,
    Encoder,
    Generator,
    ModelConfig,
    PatchDiscriminator,
    ResidualBlock,
    TimbreModel,
    init_weights,
)
from timbre_transfer.models.multidomain import _extend_right

DOMAINS = ["piano", "violin", "flute"]
# Tiny: 8 latent channels, one block everywhere, small discriminators.
TINY = ModelConfig(dim=2, n_downsample=2, n_res_encoder=1, n_res_shared=1, n_res_generator=1,
                   disc_channels=(4, 8, 8, 8))
SMALL = ModelConfig(dim=8, n_res_encoder=1, n_res_generator=1, disc_channels=(8, 8, 8, 8))


def unique_count(*modules) -> int:
    seen = {}
    for m in modules:
        for p in m.parameters():
            seen[id(p)] = p
    return sum(p.numel() for p in seen.values())


@pytest.fixture
def tiny():
    return TimbreModel(TINY, DOMAINS)


def test_reference_config_shapes_and_range():
    model = TimbreModel(ModelConfig(), DOMAINS)
    x = torch.rand(1, 1, 128, 128)
    with torch.no_grad():
        enc = model.encode(x)
        assert enc.mu.shape == (1, 4 * 32, 128 // 4, 128 // 4)
        assert enc.logvar is None
        y = model.decode(enc.mu, "violin")
        assert y.shape == x.shape
        assert 0.0 <= y.min() and y.max() <= 1.0
        assert model.discriminate(x, "flute").shape == (1, 1, 128 // 16, 128 // 16)
    assert model.downsample_factor == 4


@pytest.mark.parametrize("n_mels,dim", [(128, 2), (64, 8)])
@pytest.mark.parametrize("frames", [1, 5, 37, 130, 257])
def test_translate_keeps_any_shape(n_mels, dim, frames):
    cfg = ModelConfig(dim=dim, n_res_encoder=1, n_res_generator=1, disc_channels=(4, 4, 4, 4))
    model = TimbreModel(cfg, DOMAINS).eval()
    x = torch.rand(2, 1, n_mels, frames)
    with torch.no_grad():
        y = model.translate(x, "piano")
    assert y.shape == x.shape
    assert 0.0 <= y.min() and y.max() <= 1.0


def test_translate_odd_mel_count_and_sampling(tiny):
    x = torch.rand(1, 1, 7, 3)
    with torch.no_grad():
        assert tiny.translate(x, "flute").shape == x.shape
        assert tiny.translate(x, "flute", sample=True).shape == x.shape


def test_translate_on_aligned_input_is_decode_of_mu(tiny):
    x = torch.rand(2, 1, 16, 24)
    with torch.no_grad():
        expected = tiny.decode(tiny.encode(x).mu, "violin")
        torch.testing.assert_close(tiny.translate(x, "violin"), expected, rtol=0, atol=0)


def test_extend_right_reflects_values():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    # reflection without repeating the edge, then reflecting the extended signal again
    assert _extend_right(x, 1, 5).tolist() == [[1, 2, 3, 2, 1]]
    assert _extend_right(x, 1, 8).tolist() == [[1, 2, 3, 2, 1, 2, 3, 2]]
    assert _extend_right(x, 1, 3).tolist() == [[1, 2, 3]]
    assert _extend_right(torch.tensor([[4.0]]), 1, 3).tolist() == [[4, 4, 4]]
    assert _extend_right(x.T, 0, 4).flatten().tolist() == [1, 2, 3, 2]


def test_components_shapes():
    enc = Encoder(dim=4, n_downsample=3, n_res=1)
    mu = enc(torch.rand(2, 1, 32, 16)).mu
    assert mu.shape == (2, 32, 4, 2)
    gen = Generator(ResidualBlock(32), 32, n_res=1, n_upsample=3, output_activation="none")
    assert gen(mu).shape == (2, 1, 32, 16)
    disc = PatchDiscriminator(1, (4, 8))
    assert disc(torch.rand(2, 1, 32, 16)).shape == (2, 1, 8, 4)
    block = ResidualBlock(3)
    assert block(torch.rand(1, 3, 5, 5)).shape == (1, 3, 5, 5)


def test_shared_block_is_one_object(tiny):
    shared = tiny.shared
    assert all(tiny.generators[d].shared is shared for d in DOMAINS)
    assert len(shared) == TINY.n_res_shared
    # the generators' own layers are distinct objects
    assert tiny.generators["piano"].body is not tiny.generators["violin"].body


def test_step_through_one_generator_changes_the_others_shared_part(tiny):
    z = torch.randn(1, TINY.latent_channels, 4, 4)
    with torch.no_grad():
        before = tiny.generators["violin"].shared(z).clone()
        violin_out = tiny.decode(z, "violin").clone()
    opt = torch.optim.SGD(tiny.generators["piano"].parameters(), lr=0.5)
    tiny.decode(z, "piano").mean().backward()
    opt.step()
    with torch.no_grad():
        assert not torch.allclose(tiny.generators["violin"].shared(z), before)
        assert not torch.allclose(tiny.decode(z, "violin"), violin_out)


def test_parameter_groups_are_unique_and_complete(tiny):
    g = tiny.generator_parameters()
    d = tiny.discriminator_parameters()
    assert len({id(p) for p in g}) == len(g)
    assert len({id(p) for p in d}) == len(d)
    assert sum(p.numel() for p in g) == unique_count(tiny.encoder, tiny.shared, tiny.generators)
    # the shared block counted once, not once per generator
    own = sum(p.numel() for gen in tiny.generators.values() for p in gen.body.parameters())
    assert sum(p.numel() for p in g) == (
        unique_count(tiny.encoder) + unique_count(tiny.shared) + own
    )
    assert sum(p.numel() for p in d) == unique_count(tiny.discriminators)
    assert not {id(p) for p in g} & {id(p) for p in d}
    assert {id(p) for p in g} | {id(p) for p in d} == {id(p) for p in tiny.parameters()}


def test_learned_variance_encoding_and_sampling():
    model = TimbreModel(ModelConfig(**{**TINY.__dict__, "learned_variance": True}), DOMAINS)
    x = torch.rand(2, 1, 16, 16)
    enc = model.encode(x)
    assert enc.logvar is not None and enc.logvar.shape == enc.mu.shape
    # the head starts at zero: unit variance, like the reference, until trained
    assert torch.equal(enc.logvar, torch.zeros_like(enc.logvar))
    z1 = model.sample(enc, torch.Generator().manual_seed(3))
    z2 = model.sample(enc, torch.Generator().manual_seed(3))
    z3 = model.sample(enc, torch.Generator().manual_seed(4))
    assert torch.equal(z1, z2) and not torch.equal(z1, z3)
    # gradients reach the variance head through the reparameterisation
    z1.pow(2).sum().backward()
    assert model.encoder.logvar_head[1].weight.grad.abs().sum() > 0


def test_sampling_statistics(tiny):
    mu = torch.randn(4, 8, 64, 64)  # 131072 elements
    unit = tiny.sample(Encoded(mu, None), torch.Generator().manual_seed(0)) - mu
    assert abs(unit.mean().item()) < 0.01
    assert abs(unit.std().item() - 1.0) < 0.01
    # logvar = log 4 -> sigma = 2
    wide = tiny.sample(Encoded(mu, torch.full_like(mu, torch.log(torch.tensor(4.0)).item())),
                       torch.Generator().manual_seed(0)) - mu
    assert abs(wide.std().item() - 2.0) < 0.02
    # same generator seed -> eps identical, scaled by sigma
    torch.testing.assert_close(wide, 2 * unit)


def test_default_model_has_no_logvar(tiny):
    assert tiny.encoder.logvar_head is None
    assert tiny.encode(torch.rand(1, 1, 8, 8)).logvar is None


def test_init_std():
    disc = PatchDiscriminator()
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    big = max(convs, key=lambda m: m.weight.numel())
    assert abs(big.weight.std().item() - 0.02) < 0.001
    assert abs(big.weight.mean().item()) < 0.001
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs)
    enc = Encoder(dim=8)
    w = enc.body[1].weight
    assert w.shape == (8, 1, 7, 7) and abs(w.std().item() - 0.02) < 0.005
    layer = init_weights(torch.nn.Conv2d(64, 64, 3), std=0.1)
    assert abs(layer.weight.std().item() - 0.1) < 0.005


def test_output_activation_none_is_sigmoid_logit(tiny):
    raw = TimbreModel(ModelConfig(**{**TINY.__dict__, "output_activation": "none"}), DOMAINS)
    raw.load_state_dict(tiny.state_dict(), strict=True)
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.sigmoid(raw.translate(x, "piano")),
                                   tiny.translate(x, "piano"))


def test_unknown_domain_errors_list_domains(tiny):
    x = torch.rand(1, 1, 8, 8)
    z = tiny.encode(x).mu
    for call in (lambda: tiny.decode(z, "cello"), lambda: tiny.discriminate(x, "cello"),
                 lambda: tiny.translate(x, "cello")):
        with pytest.raises(KeyError, match="cello") as info:
            call()
        assert all(d in str(info.value) for d in DOMAINS)


def test_bad_input_shape(tiny):
    with pytest.raises(ValueError, match=r"\(B, 1, F, T\)"):
        tiny.translate(torch.rand(1, 8, 8), "piano")


@pytest.mark.parametrize("field,value", [
    ("dim", 0), ("dim", 2.5), ("dim", True), ("n_downsample", -1), ("n_res_encoder", -1),
    ("n_res_shared", -2), ("n_res_generator", "3"), ("learned_variance", "yes"),
    ("output_activation", "tanh"), ("disc_channels", ()), ("disc_channels", (64, 0)),
    ("disc_channels", "64"), ("disc_channels", 64),
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value})


def test_config_list_becomes_tuple():
    cfg = ModelConfig(disc_channels=[8, 16])
    assert cfg.disc_channels == (8, 16)
    hash(cfg)  # frozen and hashable
    assert ModelConfig().latent_channels == 128


@pytest.mark.parametrize("domains", [[], ["a", "a"], ["a", ""], ["a.b"], "piano", ["train"], [1]])
def test_bad_domain_names(domains):
    with pytest.raises(ValueError, match="domain"):
        TimbreModel(TINY, domains)


def test_state_dict_round_trip_is_exact(tiny):
    # make the weights differ from a fresh init
    with torch.no_grad():
        for p in tiny.parameters():
            p.add_(0.01 * torch.randn_like(p))
    buf = io.BytesIO()
    torch.save(tiny.state_dict(), buf)
    buf.seek(0)
    fresh = TimbreModel(TINY, DOMAINS)
    fresh.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    assert fresh.generators["flute"].shared is fresh.shared
    tiny.eval()
    fresh.eval()
    x = torch.rand(2, 1, 20, 37)
    with torch.no_grad():
        for d in DOMAINS:
            assert torch.equal(fresh.translate(x, d), tiny.translate(x, d))
            crop = x[..., :32]
            assert torch.equal(fresh.discriminate(crop, d), tiny.discriminate(crop, d))


def test_pitch_template_generator_needs_and_uses_its_template():
    from timbre_transfer.models.multidomain import ModelConfig, TimbreModel

    model = TimbreModel(ModelConfig(dim=8, n_res_encoder=1, n_res_generator=1,
                                    pitch_template=True), ["a", "b"])
    x = torch.rand(2, 1, 32, 16)
    z = model.encode(x).mu
    one, other = torch.zeros(2, 1, 32, 16), torch.zeros(2, 1, 32, 16)
    other[:, :, 10] = 1.0  # a harmonic on bin 10
    assert not torch.allclose(model.decode(z, "a", one), model.decode(z, "a", other))
    with pytest.raises(ValueError, match=r"needs a pitch template of shape \(2, 1, 32, 16\)"):
        model.decode(z, "a")
    with pytest.raises(ValueError, match="needs a pitch template"):
        model.decode(z, "a", torch.zeros(2, 1, 32, 8))
    plain = TimbreModel(ModelConfig(dim=8, n_res_encoder=1, n_res_generator=1), ["a", "b"])
    with pytest.raises(ValueError, match="takes no pitch template"):
        plain.decode(plain.encode(x).mu, "a", one)
    # translate pads the template as it pads the input
    assert model.translate(torch.rand(1, 1, 30, 13), "b",
                           pitch=torch.rand(1, 1, 30, 13)).shape == (1, 1, 30, 13)


def test_pitch_discriminator_reads_the_template_and_needs_the_generator_one():
    from timbre_transfer.models.multidomain import ModelConfig, TimbreModel

    with pytest.raises(ValueError, match="needs pitch_template"):
        ModelConfig(pitch_discriminator=True)
    model = TimbreModel(ModelConfig(dim=8, n_res_encoder=1, n_res_generator=1, pitch_template=True,
                                    pitch_discriminator=True, disc_channels=(8, 8)), ["a", "b"])
    x = torch.rand(2, 1, 32, 16)
    low, high = torch.zeros_like(x), torch.zeros_like(x)
    low[:, :, 4], high[:, :, 20] = 1.0, 1.0
    assert not torch.allclose(model.discriminate(x, "a", low), model.discriminate(x, "a", high))
    with pytest.raises(ValueError, match="needs a pitch template"):
        model.discriminate(x, "a")


def _source_filter_model():
    from timbre_transfer.audio.transform import AudioTransform
    from timbre_transfer.models.multidomain import ModelConfig, TimbreModel

    model = TimbreModel(ModelConfig(dim=8, n_res_encoder=1, n_res_generator=1,
                                    pitch_template=True, source_filter=True), ["a", "b"])
    transform = AudioTransform()
    transform.norm_shift.fill_(0.5)
    transform.norm_scale.fill_(5.0)
    model.set_levels(transform)
    return model, transform


def test_source_filter_output_is_the_envelope_times_the_comb_plus_the_floor():
    """With the last conv held at constant maps (envelope e, floor n), the output is by hand
    (log1p(expm1(5 e + .5) comb + expm1(5 n + .5)) - .5) / 5: partials exactly where the comb
    puts them, at k x f0."""
    from timbre_transfer.audio.pitch import MelPitch
    from timbre_transfer.audio.transform import TransformParams

    model, _ = _source_filter_model()
    conv = model.generators["b"].head[1]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor([2.0, -1.0]))  # sigmoid: e = 0.881, n = 0.269
    notes = MelPitch.of(TransformParams()).notes(torch.full((1, 16), 220.0), torch.ones(1, 16),
                                                 source_filter=True)
    out = model.decode(model.encode(torch.rand(1, 1, 128, 16)).mu, "b", notes)
    e, n = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(-1.0))
    level = lambda v: torch.expm1(5 * v + 0.5)
    expected = (torch.log1p(level(e) * notes[:, 1:] + level(n)) - 0.5) / 5
    torch.testing.assert_close(out, expected)
    column = out[0, 0, :, 3]
    peaks = [m for m in range(1, 40) if column[m] > column[m - 1] and column[m] >= column[m + 1]]
    comb = notes[0, 1, :, 3]
    assert peaks == [m for m in range(1, 40) if comb[m] > comb[m - 1] and comb[m] >= comb[m + 1]]
    assert len(peaks) >= 3  # 220, 440, 660 Hz ... resolved below 1 kHz


def test_source_filter_floor_cannot_draw_a_line():
    """The floor is smoothed by a 7-bin box twice: a one-bin line becomes a 13-bin triangle of
    height 1/7 (here with the envelope at silence, so the output is the floor)."""
    model, _ = _source_filter_model()
    generator = model.generators["a"]
    envelope = torch.full((1, 1, 128, 4), -0.1)  # level expm1(0) = 0
    line = torch.full((1, 1, 128, 4), -0.1)
    line[:, :, 64] = 0.9  # normalised: 5 * 0.9 + 0.5 = 5 nats above silence
    out = generator.render(envelope, line, torch.ones(1, 1, 128, 4))
    weights = torch.tensor([7 - abs(k) for k in range(-6, 7)], dtype=torch.float32) / 49
    expected = torch.full((128,), -0.1)
    expected[58:71] += weights  # the smoothing is linear in the normalised units
    torch.testing.assert_close(out[0, 0, :, 0], expected)


def test_source_filter_needs_the_template_and_its_comb():
    from timbre_transfer.models.multidomain import ModelConfig

    with pytest.raises(ValueError, match="source_filter needs pitch_template"):
        ModelConfig(source_filter=True)
    model, transform = _source_filter_model()
    z = model.encode(torch.rand(2, 1, 32, 16)).mu
    with pytest.raises(ValueError, match=r"needs a pitch template and comb of shape \(2, 2,"):
        model.decode(z, "a", torch.rand(2, 1, 32, 16))
    # the levels are part of the state: a reloaded model renders alike
    from timbre_transfer.models.multidomain import TimbreModel

    again = TimbreModel(model.config, model.domains)
    again.load_state_dict(model.state_dict())
    assert float(again.generators["a"].norm_scale) == 5.0
    notes = torch.rand(2, 2, 32, 16)
    torch.testing.assert_close(again.decode(z, "a", notes), model.decode(z, "a", notes))
    assert model.translate(torch.rand(1, 1, 30, 13), "b",
                           pitch=torch.rand(1, 2, 30, 13)).shape == (1, 1, 30, 13)
