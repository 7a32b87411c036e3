"""The named rows of ``transfer_quality.py``: each row's config file, overrides and inverter.

A row's settings never change once it has been measured: cached runs (``runs/<row>``) and the
tables of docs/benchmarks.md are read by name. A new setting is a new row.

- ``identity`` / ``resynthesis`` (no entry here): the untouched source, and the target's own
  held-out audio through the mel front end and the inverter (from the evaluation of the first
  trained row);
- ``reference``: config/reference.yaml, the published architecture and losses;
- ``plain``: config/cpu-small.yaml with every pitch mechanism off (the previous default);
- ``template``: + the harmonic pitch template as a generator input;
- ``template+D``: + the same template read by the discriminators too;
- ``augment``: + random pitch-shift augmentation (+-12 semitones) alone;
- ``pitch-loss``: + the pitch-consistency loss alone (a frozen pitch network, fitted first on
  the store's pYIN labels, must hear each translation at its source's pitch);
- ``ddsp``: the reference model's mels rendered by a DDSP head at the source's f0/loudness;
- ``template+pitch-loss``: the template (generators only) with the pitch-consistency loss;
- ``template+D+augment``: the template read by generators and discriminators, with the
  augmentation (the recipe before 2026-12-04);
- ``template+D+augment+pitch-loss``: that with the pitch-consistency loss added;
- ``template+augment+pitch-loss``: the template (generators only), the augmentation and the
  pitch-consistency loss at weight 1 (the recipe of 2026-12-04);
- ``template+augment+pitch-loss+loudness-loss``: that with the loudness-consistency loss
  (``loss.loudness``: each translation must follow its source's A-weighted loudness envelope,
  read from the mels);
- ``template+augment+pitch-loss-x5``: that with five times the pitch-consistency weight;
- ``previous-recipe``: the recipe of the second run of 2026-12-04: the template (generators
  only), the augmentation, the pitch-consistency loss at weight 5 and the loudness-consistency
  loss (``-seed1``: again with seed 1, to read the other rows against the noise between two runs
  of one setting). The ``recipe+...`` and ``recipe-...`` rows below are this recipe with one
  change;
- ``recipe+gan-x2`` / ``recipe+kl-x5`` / ``recipe+cycle-x0.1`` / ``recipe+gan-x2+cycle-x0.1``:
  the recipe with one loss re-weighted, to look for the conversion the pitch terms cost: twice
  the adversarial weight, five times the KL weights (a narrower latent), a tenth of the cycle
  weight (a translation need not keep what the way back needs), and the first with the third;
- ``recipe-augment``: the recipe without the pitch-shift augmentation (does it still earn its
  place once the pitch loss is strong?);
- ``recipe+domain-class`` / ``-x0.5`` / ``-x3``: the recipe with a domain classifier
  (StarGAN's classification loss, ``loss.domain_class`` 10 / 5 / 30; ``-seed1`` /
  ``-x0.5-seed1``: 10 / 5 again with seed 1): it learns to name every real crop's domain (as
  augmented), and each translation must be named its target, not its source;
- ``drawing-recipe``: the recipe shipped from 2026-12-05 to 2026-12-06, whose generators draw
  the mel: the previous recipe with the domain classifier at weight 5 (the settings of
  ``recipe+domain-class-x0.5``, whose ``-seed1`` row is its second seed);
- ``recipe-no-pitch-loss`` / ``recipe-no-domain-class`` / ``recipe-no-loudness-loss`` /
  ``recipe-no-augment``: that drawing recipe with one mechanism off (issue 32's ablations at the
  default register: does each still earn its place once transfers move into the target's
  register?). The ``recipe+...`` rows
  below are the drawing recipe with one change too;
- ``recipe+source-filter``: the drawing recipe whose generators render their output from the notes'
  harmonic comb under an envelope and a smooth noise floor they draw (``model.source_filter``):
  partials exactly on the notes, so the nets can only choose the timbre;
  ``recipe+source-filter-no-augment``: that without the pitch-shift augmentation
  (``-no-pitch-loss``: and without the pitch-consistency loss, as pitch is kept by
  construction; ``-no-pitch-loss-seed1``: that again with seed 1);
- ``recipe`` / ``recipe-seed1``: config/cpu-small.yaml as shipped (seeds 0 and 1): since
  2026-12-06 the settings of ``recipe+source-filter-no-augment-no-pitch-loss`` (the same runs);
- ``ddsp-anchor``: DDSP's own timbre transfer, the anchor a user would pick instead: one DDSP
  head per domain that hears f0 and loudness alone (``head.mel_input=false``), trained for the
  same wall time (``--minutes``, shared among the heads) on the same store, rendering the
  source's f0 moved by the same automatic octaves (the ``recipe`` model only resolves them);
- ``gpu``: config/gpu.yaml, the recipe at the published size (``benchmarks/gpu_check.sh``);
- ``template+pitch-loss+ddsp`` / ``recipe+ddsp``: those rows' models, their mels rendered by the
  ``ddsp`` row's head at the source's f0 and loudness (no model of their own);
- ``shipped``: the model shipped with the package (``real8-small``, trained by
  ``benchmarks/train_models.py`` on eight timbres with this set's held-out clips held out),
  scored on the set's clips prepared ``--like`` it (its own mel normalisation, so its judges are
  trained anew on those features, ``classifier_shipped.pt``): the transfers into the set's
  domains that it has.

The rows of mechanisms that were measured and left the code are gone from the table; their
numbers stay in docs/benchmarks.md: the envelope-keeping augmentation (issue 32,
``train.pitch_shift_mode: envelope``) and, from issue 30, the latent critic
(``loss.latent_confusion``), the envelope discriminators (``loss.envelope_gan``,
``train.envelope_register``, ``train.envelope_per_frame``) and the pitch loss against pYIN labels
(``train.pitch_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """A row's settings: a file of config/, its overrides (in order) and the inverter."""

    config: str
    overrides: tuple[str, ...] = ()
    inverter: str = "pghi+gla"


def mechanisms(template: bool = False, discriminator: bool = False, shift: int = 0,
               pitch: float = 0.0, loudness: float = 0.0, domain_class: float = 0.0,
               source_filter: bool = False) -> tuple[str, ...]:
    """cpu-small.yaml overrides that set every mechanism a row measures, on or off (so that a
    row keeps its meaning, and its cached run, when the shipped recipe changes)."""
    return (f"model.pitch_template={str(template).lower()}",
            f"model.pitch_discriminator={str(discriminator).lower()}",
            f"train.pitch_shift={shift}", f"loss.pitch={pitch}", f"loss.loudness={loudness}",
            f"loss.domain_class={domain_class}",
            f"model.source_filter={str(source_filter).lower()}")


SMALL = "cpu-small.yaml"
# the recipe of the second run of 2026-12-04, before the domain classifier: the base of the
# ``recipe+...`` rows
PREVIOUS = mechanisms(template=True, shift=12, pitch=5.0, loudness=10.0)


# the recipe of 2026-12-05 (the previous one with the domain classifier at 5): the base of the
# one-at-a-time rows of issue 32
DRAWING = mechanisms(template=True, shift=12, pitch=5.0, loudness=10.0, domain_class=5.0)


def on_drawing(*overrides: str) -> Row:
    """A row of the recipe of 2026-12-05 with ``overrides``."""
    return Row(SMALL, (*DRAWING, *overrides))


def small(**mechanism) -> Row:
    """A cpu-small.yaml row with every mechanism pinned (see :func:`mechanisms`)."""
    return Row(SMALL, mechanisms(**mechanism))


def on_previous(*overrides: str) -> Row:
    """A row of the previous recipe with ``overrides``."""
    return Row(SMALL, (*PREVIOUS, *overrides))


ROWS = {
    "reference": Row("reference.yaml"),
    "plain": small(),
    "template": small(template=True),
    "template+D": small(template=True, discriminator=True),
    "augment": small(shift=12),
    "pitch-loss": small(pitch=1.0),
    "ddsp": Row("reference.yaml", inverter="ddsp"),  # the reference row's model, rendered by DDSP
    "template+pitch-loss": small(template=True, pitch=1.0),
    "template+D+augment": small(template=True, discriminator=True, shift=12),
    "template+D+augment+pitch-loss": small(template=True, discriminator=True, shift=12,
                                           pitch=1.0),
    "template+augment+pitch-loss": small(template=True, shift=12, pitch=1.0),
    "template+augment+pitch-loss+loudness-loss": small(template=True, shift=12, pitch=1.0,
                                                       loudness=10.0),
    "template+augment+pitch-loss-x5": small(template=True, shift=12, pitch=5.0),
    "previous-recipe": on_previous(),
    "previous-recipe-seed1": on_previous("train.seed=1"),  # its run-to-run noise
    "recipe+gan-x2": on_previous("loss.gan=20.0"),
    "recipe+kl-x5": on_previous("loss.kl=0.5", "loss.kl_cycle=0.5"),
    "recipe+cycle-x0.1": on_previous("loss.cycle=10.0"),
    "recipe+gan-x2+cycle-x0.1": on_previous("loss.gan=20.0", "loss.cycle=10.0"),
    "recipe-augment": on_previous("train.pitch_shift=0"),
    "recipe+domain-class": on_previous("loss.domain_class=10.0"),
    "recipe+domain-class-x3": on_previous("loss.domain_class=30.0"),
    "recipe+domain-class-seed1": on_previous("loss.domain_class=10.0", "train.seed=1"),
    "recipe+domain-class-x0.5": on_previous("loss.domain_class=5.0"),  # the recipe's settings
    "recipe+domain-class-x0.5-seed1": on_previous("loss.domain_class=5.0", "train.seed=1"),
    "drawing-recipe": on_drawing(),
    "recipe-no-pitch-loss": on_drawing("loss.pitch=0.0"),
    "recipe-no-domain-class": on_drawing("loss.domain_class=0.0"),
    "recipe-no-loudness-loss": on_drawing("loss.loudness=0.0"),
    "recipe-no-augment": on_drawing("train.pitch_shift=0"),
    "recipe+source-filter": on_drawing("model.source_filter=true"),
    "recipe+source-filter-no-augment": on_drawing("model.source_filter=true",
                                                  "train.pitch_shift=0"),
    "recipe+source-filter-no-augment-no-pitch-loss": on_drawing(
        "model.source_filter=true", "train.pitch_shift=0", "loss.pitch=0.0"),
    "recipe+source-filter-no-augment-no-pitch-loss-seed1": on_drawing(
        "model.source_filter=true", "train.pitch_shift=0", "loss.pitch=0.0", "train.seed=1"),
    "recipe": Row(SMALL),  # as shipped
    "recipe-seed1": Row(SMALL, ("train.seed=1",)),
    "ddsp-anchor": Row(SMALL, inverter="ddsp"),
    "gpu": Row("gpu.yaml"),
    "template+pitch-loss+ddsp": Row(SMALL, inverter="ddsp"),
    "recipe+ddsp": Row(SMALL, inverter="ddsp"),
    "shipped": Row(SMALL),  # trained by benchmarks/train_models.py, not here
}
# rows that train no model of their own: another row's mels, rendered by the one DDSP head
DDSP_MODEL = {"ddsp": "reference", "template+pitch-loss+ddsp": "template+pitch-loss",
              "recipe+ddsp": "recipe", "ddsp-anchor": "recipe"}
ANCHOR = "ddsp-anchor"  # its heads are its own (quality_common.train_ddsp_anchor)
SHIPPED = "shipped"  # the model that ships with the package (timbre_transfer.pretrained)
SHIPPED_MODEL = "real8-small"
# issue 32's targets for the recipe (means over source != target; @0: between the instruments
# at octave 0)
TARGETS = {"cnn": (">=", 0.9), "mfcc": (">=", 0.85), "median_f0_cents": ("<=", 15.0),
           "f0_within_50c": (">=", 0.9), "voiced_coverage": (">=", 0.9),
           "loudness_correlation": (">=", 0.9), "fad_ratio": ("<=", 0.4), "cnn@0": (">=", 0.7),
           "mfcc@0": (">=", 0.7), "f0@0": ("<=", 20.0), "minutes": ("<=", 60.0)}
INSTRUMENTS = ("violin", "clarinet", "tenor_sax", "bassoon")  # Bach10's, in the --set bach10
# the mel figures: (source, target) pairs, each transferred by these rows' models where trained
FIGURE_PAIRS = (("violin", "bassoon"), ("speech_male", "clarinet"))
FIGURE_ROWS = ("reference", "ddsp-anchor", "drawing-recipe", "recipe")
