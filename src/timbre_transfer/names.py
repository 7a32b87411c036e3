"""Names shared by the library and the command line: the inverters and the timbre knobs.

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
