"""The lab page's whole state as URL query parameters, so a link reopens the same
experiment (as TensorFlow Playground's links do). :func:`to_query` writes every field;
:func:`from_query` reads them back, and a parameter that is unknown or out of range gets
one line saying what was wrong and what is allowed, and falls back to its default. A link
is anyone's to write: a value is shown cut to SHOWN characters (its repr: a NUL or an
escape sequence shows as such), and at most MAX_PROBLEMS lines are said."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Mapping

from .families import FAMILIES, Options
from .targets import TARGETS, TEXT_ALLOWED, clean_text

MAX_FAMILIES = 4
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # what the page's slider offers; the URL takes any in range
BATCHES = (32, 64, 128, 256, 512, 1024)
SHOWN = 40  # characters of a bad parameter's name or value that its line shows
MAX_PROBLEMS = 8  # lines about a URL's parameters; the rest are counted in one more


@dataclass(frozen=True)
class LabState:
    target: str = "moons"
    text: str = "genlab"  # the "text" target's word
    families: tuple[str, ...] = ("realnvp",)
    lr: float = 1e-3
    batch: int = 256
    couplings: int = Options.couplings
    k: int = Options.k
    hidden: int = Options.hidden
    latent: int = Options.latent
    components: int = Options.components
    anneal: int = Options.anneal
    seed: int = 0
    play: bool = False
    slow: bool = False

    def options(self) -> Options:
        return Options(couplings=self.couplings, k=self.k, hidden=self.hidden, latent=self.latent,
                       components=self.components, anneal=self.anneal)

    def experiment_key(self) -> tuple:
        """What defines the experiments: a change here starts them afresh (lr, batch, play and
        slow change while they train)."""
        d = asdict(self)
        return tuple((k, d[k]) for k in d if k not in ("lr", "batch", "play", "slow"))


# -- parsers: value string -> value, or ValueError --------------------------------------------
def _int(lo: int, hi: int, allowed: tuple[int, ...] | None = None) -> tuple[Callable[[str], Any], str]:
    def parse(s: str) -> int:
        v = int(s)
        if not lo <= v <= hi or (allowed and v not in allowed):
            raise ValueError
        return v
    return parse, (f"one of {', '.join(map(str, allowed))}" if allowed else f"a whole number from {lo} to {hi}")


def _float(lo: float, hi: float) -> tuple[Callable[[str], Any], str]:
    def parse(s: str) -> float:
        v = float(s)
        if not (math.isfinite(v) and lo <= v <= hi):
            raise ValueError
        return v
    return parse, f"a number from {lo:g} to {hi:g}"


def _choice(options: tuple[str, ...]) -> tuple[Callable[[str], Any], str]:
    def parse(s: str) -> str:
        if s not in options:
            raise ValueError
        return s
    return parse, f"one of {', '.join(options)}"


def _families(s: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in s.split(",") if n.strip())
    if not 1 <= len(names) <= MAX_FAMILIES or len(set(names)) < len(names) or set(names) - set(FAMILIES):
        raise ValueError
    return names


class _Why(ValueError):
    """A refusal whose message says what was wrong (added to the parameter's line)."""


def _text(s: str) -> str:
    try:
        return clean_text(s)
    except ValueError as e:
        raise _Why(str(e)) from None


def _bool(s: str) -> bool:
    if s not in ("0", "1"):
        raise ValueError
    return s == "1"


PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "target": _choice(tuple(t for t in TARGETS if t != "image")),  # an upload cannot travel in a link
    "text": (_text, TEXT_ALLOWED),
    "families": (_families, f"1 to {MAX_FAMILIES} different names, comma-separated, of {', '.join(FAMILIES)}"),
    "lr": _float(1e-5, 0.1),
    "batch": _int(8, 4096),
    "couplings": _int(1, 16),
    "k": _int(1, 64),
    "hidden": _int(8, 256),
    "latent": _int(1, 2),
    "components": _int(1, 32),
    "anneal": _int(0, 100_000),
    "seed": _int(0, 2 ** 31 - 1),
    "play": (_bool, "0 or 1"),
    "slow": (_bool, "0 or 1"),
}
assert set(PARSERS) == {f.name for f in fields(LabState)}


def _format(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, tuple):
        return ",".join(v)
    if isinstance(v, float):
        return repr(v)  # the shortest string that reads back as the same float
    return str(v)


def to_query(state: LabState) -> dict[str, str]:
    """Every field as a URL parameter string."""
    return {k: _format(v) for k, v in asdict(state).items()}


def shown(text: str) -> str:
    """``text`` as a line shows it: its repr, cut to SHOWN characters with its length said."""
    text = str(text)
    return repr(text) if len(text) <= SHOWN else f"{text[:SHOWN]!r}… ({len(text):,} characters)"


def from_query(params: Mapping[str, str | list[str]]) -> tuple[LabState, list[str]]:
    """The state a URL's parameters describe, and one line per parameter that was not
    taken (unknown, or a value out of range: its default is used), at most MAX_PROBLEMS
    of them and then one line counting the rest."""
    values, problems = {}, []
    for key, raw in params.items():
        raw = str(raw[-1] if isinstance(raw, list) and raw else raw)
        if key not in PARSERS:
            problems.append(f"URL parameter {shown(key)} is not one of the lab's ({', '.join(PARSERS)}): ignored")
            continue
        parse, allowed = PARSERS[key]
        try:
            values[key] = parse(raw)
        except (ValueError, TypeError) as e:
            default = _format(getattr(LabState(), key))
            why = str(e) if isinstance(e, _Why) else allowed  # what was wrong, and what is allowed
            problems.append(f"URL parameter {key}={shown(raw)} is not allowed ({why}): using {default}")
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"... and {len(problems) - MAX_PROBLEMS:,} more URL parameters not taken"]
    return replace(LabState(), **values), problems
