"""Names shared by the library and the command line: the inverters, the f0 trackers and the
timbre knobs.

Kept here, with no torch or numpy import, so that ``timbre-transfer --help`` can list the
choices without loading the modules that implement them.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the phase reconstructions of a mel (:func:`timbre_transfer.audio.transform.round_trip`)
INVERTERS = ("pghi", "griffinlim", "pghi+gla")
#: the inverter that renders with a domain's DDSP head instead of reconstructing phase
DDSP = "ddsp"
#: inverters a stream can use (:mod:`timbre_transfer.inference.streaming`)
STREAM_INVERTERS = ("pghi", DDSP)
#: the f0 trackers of :mod:`timbre_transfer.audio.f0`: SwiftF0 (a small network, the default)
#: and pYIN (the reference, about 27x slower)
F0_TRACKERS = ("swift", "pyin")
DEFAULT_F0_TRACKER = "swift"
#: the tracker of stores and checkpoints written before 0.3.0, which do not name theirs
LEGACY_F0_TRACKER = "pyin"
#: the register a transfer plays in: "auto" moves the performance by the whole number of
#: octaves that brings it closest to the target's training register (as DDSP's timbre-transfer
#: demo does); 0 keeps the source's register
DEFAULT_OCTAVE = "auto"


def format_octaves(octaves: int) -> str:
    """``+1 octave``, ``-2 octaves``, ``0 octaves``: a register move for people."""
    if octaves == 0:
        return "0 octaves"
    return f"{octaves:+d} octave{'' if abs(octaves) == 1 else 's'}"


def recorded_f0_tracker(prepare: dict | None) -> str:
    """The tracker that analysed a store or trained a checkpoint, from the ``prepare`` options it
    records (:data:`LEGACY_F0_TRACKER` where they name none)."""
    return (prepare or {}).get("f0_tracker", LEGACY_F0_TRACKER)


def f0_tracker_mismatch(trained: str, used: str, what: str, remedy: str) -> str:
    """The message for pitch controls of tracker ``used`` given to ``what`` (a model or head)
    trained on tracker ``trained``'s; ``remedy`` says what to do."""
    return (f"{what} was trained on pitch controls by {trained}, and these are by {used}: the "
            f"two trackers differ in their voicing decisions (docs/benchmarks.md, 'Pitch at "
            f"network speed'), so its pitch input would not be what it learnt on; {remedy}")


@dataclass(frozen=True)
class Knob:
    """A timbre knob: its unit, its range, which inverters render it and its help line."""

    unit: str
    low: float
    high: float
    inverters: str  # "any" or "ddsp"
    help: str


#: the timbre knobs of :mod:`timbre_transfer.audio.timbre_controls`, by name
KNOBS = {
    "brightness": Knob("octaves", -0.5, 0.5, "any",
                       "spectral centroid moved by this many octaves"),
    "noisiness": Knob("dB", -6.0, 6.0, DDSP,
                      "noise-to-harmonic energy ratio moved by this many dB"),
    "odd_even": Knob("dB", -6.0, 6.0, DDSP,
                     "odd- to even-harmonic energy ratio moved by this many dB"),
}
