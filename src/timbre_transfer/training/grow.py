"""Growing a trained model instead of training from zero: a run that starts from a checkpoint's
weights (``init.checkpoint``, ``train --init-from``), parts of it held fixed (``init.freeze``),
and ``add-domain``, which adds timbres to a trained model.

The pieces here act on a :class:`~timbre_transfer.models.multidomain.TimbreModel`, or on the
:class:`~timbre_transfer.training.trainer.Trainer` that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

SHARED_ALIAS = ".shared."  # generators.<d>.shared.* are the shared stack's tensors again


@dataclass
class InitReport:
    """What :func:`load_matching` did, by state_dict key (the shared stack's aliases left out)."""

    kept: list[str]
    fresh: list[str]
    dropped: list[str]

    def summary(self) -> str:
        return (f"{len(self.kept)} tensors kept, {len(self.fresh)} new, "
                f"{len(self.dropped)} dropped")


def _canonical(key: str) -> str:
    """``generators.<d>.shared.rest`` -> ``shared.rest`` (one tensor, several names)."""
    if key.startswith("generators.") and SHARED_ALIAS in key:
        return "shared." + key.split(SHARED_ALIAS, 1)[1]
    return key


def load_matching(model: nn.Module, state: dict, where: str) -> InitReport:
    """Copy into ``model`` every tensor of ``state`` whose name it has; the rest of ``model``
    keeps its initialisation, and the rest of ``state`` is dropped.

    Raises:
        ValueError: a tensor both have, with other shapes (named, with both shapes).
    """
    own = {k: v for k, v in model.state_dict().items() if _canonical(k) == k}
    theirs = {k: v for k, v in state.items() if _canonical(k) == k}
    for key, value in own.items():
        if key in theirs and tuple(theirs[key].shape) != tuple(value.shape):
            raise ValueError(f"{where}: {key} has shape {tuple(theirs[key].shape)} there and "
                             f"{tuple(value.shape)} in this model; train with the checkpoint's "
                             "model config")
    with torch.no_grad():
        for key, value in own.items():
            if key in theirs:
                value.copy_(theirs[key])
    return InitReport(kept=[k for k in own if k in theirs],
                      fresh=[k for k in own if k not in theirs],
                      dropped=[k for k in theirs if k not in own])


def copy_domain(model, source: str, target: str) -> None:
    """Give ``target`` a copy of ``source``'s generator (its own layers: the shared stack is
    shared already) and discriminator."""
    with torch.no_grad():
        for modules in (model.generators, model.discriminators):
            theirs = dict(modules[source].named_parameters())
            for name, p in modules[target].named_parameters():
                if not name.startswith("shared."):
                    p.copy_(theirs[name])


def frozen_parameters(model, parts, domains) -> list[nn.Parameter]:
    """The parameters of ``parts`` (:data:`~timbre_transfer.training.config.FREEZABLE`);
    ``generators`` and ``discriminators`` mean those of ``domains`` (the ones the initial
    checkpoint had), and a generator's share of the shared stack is frozen only by ``shared``."""
    shared = {id(p) for p in model.shared.parameters()}
    out: dict[int, nn.Parameter] = {}
    for part in parts:
        if part == "encoder":
            params = list(model.encoder.parameters())
        elif part == "shared":
            params = list(model.shared.parameters())
        elif part == "generators":
            params = [p for d in domains for p in model.generators[d].parameters()
                      if id(p) not in shared]
        elif part == "discriminators":
            params = [p for d in domains for p in model.discriminators[d].parameters()]
        else:
            raise ValueError(f"unknown part {part!r}")
        out.update((id(p), p) for p in params)
    return list(out.values())


def merge_centroids(centroids, saved: dict, saved_domains: list[str]) -> None:
    """Carry the running latent centroids of the domains both know from a saved
    :class:`~timbre_transfer.losses.latent.LatentCentroids` state into ``centroids``."""
    values, seen = saved.get("centroids"), saved.get("initialized")
    if values is None or values.numel() == 0:
        return
    with torch.no_grad():
        centroids.centroids = torch.zeros(len(centroids.domains), values.shape[1],
                                          device=centroids.centroids.device)
        for i, domain in enumerate(centroids.domains):
            if domain in saved_domains:
                j = saved_domains.index(domain)
                centroids.centroids[i] = values[j].to(centroids.centroids.device)
                centroids.initialized[i] = bool(seen[j])


@torch.no_grad()
def nearest_domain(model, crops: torch.Tensor, templates: torch.Tensor | None,
                   candidates: list[str]) -> tuple[str, dict[str, float]]:
    """The candidate whose generator reconstructs ``crops`` ``(B, 1, F, T)`` (through the
    encoder's mean) with the lowest mel L1; and every candidate's L1."""
    z = model.encode(crops).mu
    errors = {d: float((model.decode(z, d, templates) - crops).abs().mean()) for d in candidates}
    return min(errors, key=errors.get), errors


# ---- a Trainer that starts from a trained model ---------------------------------------------


def init_from(trainer, path) -> None:
    """Start ``trainer``'s model from ``path``'s weights where it has the same tensors (see
    :class:`~timbre_transfer.training.config.InitConfig`); also its latent centroids and what
    its loss terms learned before training (the pitch network), where it has them."""
    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.training.checkpoint import check_store_tracker

    blob = read_checkpoint(path, map_location=trainer.device)
    store = trainer.store
    if blob.get("transform") != store.transform.to_dict():
        raise ValueError(f"{path} was trained on mels of another transform or normalisation "
                         f"than {store.root}'s; grow a model on a store prepared with its settings")
    check_store_tracker(blob, store, str(path))
    report = load_matching(trainer.model, blob["model"], str(path))
    saved_domains = list(blob["domains"])
    trainer.init_domains = [d for d in trainer.domains if d in saved_domains]
    new = [d for d in trainer.domains if d not in saved_domains]
    if new and trainer.config.init.new_generators == "nearest":
        if not trainer.init_domains:
            raise ValueError(f"init.new_generators=nearest: {path} shares no domain with "
                             f"{store.root} to start the new ones from")
        for domain, nearest in nearest_domains(trainer, new).items():
            copy_domain(trainer.model, nearest, domain)
    # a kept domain keeps the register it learnt, so that octave auto moves a transfer into it
    # as the saved model did (old transfers stay bit-identical when a domain is added)
    for domain, hz in (blob.get("pitch_medians") or {}).items():
        if domain in trainer.init_domains and hz is not None:
            trainer.pitch_medians[domain] = hz
    if "centroids" in blob.get("training", {}):
        merge_centroids(trainer.centroids, blob["training"]["centroids"], saved_domains)
    for term in trainer.terms.values():
        term.load_state(blob, str(path))
    if trainer.progress:
        print(f"init from {path}: {report.summary()}; kept domains {trainer.init_domains}, "
              f"new {new}, dropped {[d for d in saved_domains if d not in trainer.domains]}")


@torch.no_grad()
def nearest_domains(trainer, new: list[str], n_crops: int = 16) -> dict[str, str]:
    """For each domain in ``new``, the kept domain whose generator best reconstructs its
    first ``n_crops`` training crops (mel L1 through the encoder's mean)."""
    data = trainer.dataset
    data.set_epoch(0)
    items = [data[i] for i in range(min(n_crops, len(data)))]
    specs = torch.stack([s for s, _ in items]).to(trainer.device)  # (B, D, 1, F, T)
    pitch = torch.stack([p for _, p in items]).to(trainer.device)  # (B, D, 2, T)
    out = {}
    for domain in new:
        d = trainer.store.domains.index(domain)  # the dataset holds the store's domains
        notes = None
        if trainer.model.config.pitch_template:
            notes = trainer.mel_pitch.notes(pitch[:, d, 0], pitch[:, d, 1],
                                            trainer.model.config.source_filter)
        out[domain], _ = nearest_domain(trainer.model, specs[:, d], notes, trainer.init_domains)
    return out


def run_domains(store, init) -> list[str]:
    """The domains a run trains: the store's; with ``init.stand_ins``, the checkpoint's
    followed by the store's (which must all be new)."""
    if not init.stand_ins:
        return list(store.domains)
    from timbre_transfer.checkpoint import read_checkpoint

    old = list(read_checkpoint(init.checkpoint)["domains"])
    taken = [d for d in store.domains if d in old]
    if taken:
        raise ValueError(f"init.stand_ins: {store.root} holds {taken}, which "
                         f"{init.checkpoint} has already; the store must hold the new domains "
                         "alone")
    return old + list(store.domains)


@torch.no_grad()
def with_stand_ins(trainer, x: torch.Tensor, f0: torch.Tensor, voiced: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The store's crops ``x (B, D_new, 1, F, T)``, f0 and voicing ``(B, D_new, T)`` with the
    checkpoint's domains put in front, as ``trainer.domains`` orders them.

    Old domain ``i``'s crops are crops of new domain ``i mod D_new`` (the batch rolled by
    ``i + 1``, so that they are not the crops its own slot holds) translated by domain ``i``'s
    frozen generator, through the encoder's mean, playing their source's notes. The new
    generators then learn from translations of real sources as add-domain does with the old
    data: into the new domain, and back through the old generators."""
    model, n_new = trainer.model, x.shape[1]
    old = trainer.domains[:len(trainer.domains) - n_new]
    crops, f0s, voicings = [], [], []
    for i, domain in enumerate(old):
        source = [t[:, i % n_new].roll(i + 1, dims=0) for t in (x, f0, voiced)]
        notes = None
        if model.config.pitch_template:
            notes = trainer.mel_pitch.notes(source[1], source[2], model.config.source_filter)
        crops.append(model.decode(model.encode(source[0]).mu, domain, notes))
        f0s.append(source[1])
        voicings.append(source[2])
    return (torch.cat([torch.stack(crops, 1), x], 1), torch.cat([torch.stack(f0s, 1), f0], 1),
            torch.cat([torch.stack(voicings, 1), voiced], 1))


def thawed(init, step: int) -> bool:
    """Whether a model grown with frozen parts (``init``, an InitConfig) trains all of them at
    ``step``."""
    return bool(init.freeze) and init.unfreeze_after is not None and step >= init.unfreeze_after


def apply_freeze(trainer) -> None:
    """Hold ``init.freeze``'s parts fixed until ``init.unfreeze_after`` (a function of the
    step alone, so that a resumed run freezes alike); they get no gradient and Adam leaves
    them as they are."""
    init = trainer.config.init
    frozen = [] if thawed(init, trainer.step) else frozen_parameters(
        trainer.model, init.freeze, trainer.init_domains)
    trainer.frozen = {id(p) for p in frozen}
    for p in trainer.model.parameters():
        p.requires_grad_(id(p) not in trainer.frozen)


# ---- configs and commands -------------------------------------------------------------------

#: what add-domain holds fixed: everything the old domains' transfers depend on (and their
#: discriminators, which have nothing left to judge)
ADD_DOMAIN_FREEZE = ("encoder", "shared", "generators", "discriminators")


def grown_config(checkpoint, config_path=None, overrides=(), **init):
    """The :class:`~timbre_transfer.training.config.RunConfig` of a run that starts from
    ``checkpoint``: ``config_path``'s (default: the checkpoint's own model, train and loss
    sections) with ``overrides``, and ``init`` (InitConfig fields) set."""
    import dataclasses

    from timbre_transfer.checkpoint import read_checkpoint
    from timbre_transfer.training.config import load_run_config

    base = config_path
    if base is None:
        saved = read_checkpoint(checkpoint).get("config")
        if not isinstance(saved, dict):
            raise KeyError(f"{checkpoint} holds no run config (not a `train` checkpoint?)")
        base = {k: v for k, v in saved.items() if k != "init"}
    config = load_run_config(base, list(overrides))
    return dataclasses.replace(config, init=dataclasses.replace(
        config.init, checkpoint=str(checkpoint), **init))


def describe_checkpoint(path) -> str:
    """What a model checkpoint holds, for ``timbre-transfer domains``."""
    from timbre_transfer.checkpoint import read_checkpoint

    blob = read_checkpoint(path)
    if "domains" not in blob or "model" not in blob:
        raise ValueError(f"{path}: not a model checkpoint (no domains or weights); a DDSP head "
                         "or classifier?")
    medians = blob.get("pitch_medians") or {}
    lines = [f"{path}", f"domains ({len(blob['domains'])}):"]
    for d in blob["domains"]:
        register = f"  training median f0 {medians[d]:.0f} Hz" if medians.get(d) else ""
        lines.append(f"  {d}{register}")
    training = blob.get("training", {})
    step = training.get("step")
    lines.append(f"training steps: {step if step is not None else 'not recorded'}"
                 + (f" (grown from a model of {blob['init_domains']})"
                    if blob.get("init_domains") else ""))
    transform = blob.get("transform", {})
    params = transform.get("params", {})
    if params:
        lines.append("transform: " + ", ".join(f"{k} {v}" for k, v in params.items())
                     + f"; normalisation shift {transform.get('norm_shift'):.4g} scale "
                     f"{transform.get('norm_scale'):.4g}")
    config = blob.get("config", {}).get("model", {})
    if config:
        lines.append("model: " + ", ".join(f"{k} {v}" for k, v in config.items()))
    heads = [d for head in blob.get("ddsp_heads", []) for d in head.get("domains", [])]
    lines.append(f"DDSP heads bundled: {', '.join(heads) if heads else 'none'}")
    lines.append(f"pitch network: {'yes' if 'pitch_net' in blob else 'no'}")
    return "\n".join(lines)
