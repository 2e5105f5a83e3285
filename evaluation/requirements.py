"""Acceptance criteria of a replay, the user's: `--require lab_accuracy>=0.97`, checked as met / not met.

Each metric is read from replay.json. Without `--require`, DEFAULT_REQUIREMENTS are checked where the replay
measured them; a requirement the user names but the replay could not measure (no truth file, say) is not met.
"""

from __future__ import annotations

import operator
import re

from glassware.errors import GlasswareError


def _truth(*keys):
    def get(out: dict):
        value = out.get("truth")
        for key in keys:
            value = None if value is None else value.get(key)
        return value
    return get


def _stress_coverage(out: dict):
    unknown = _truth("stress", "smoothed_unknown")(out)
    return None if unknown is None else 1.0 - unknown


def _switch_ratio(out: dict):
    switches = _truth("label_switches")(out)
    return switches["smoothed"] / switches["raw"] if switches and switches["raw"] else None


def _latency_p99(out: dict):
    latency = out.get("latency_ms", {})
    return (latency.get("end_to_end") or latency.get("preprocess_plus_inference") or {}).get("p99")


def _dropped_share(out: dict):
    frames = out.get("frames", {})
    return frames["dropped"] / frames["sampled"] if frames.get("sampled") else None


METRICS = {  # name: (how it is read from replay.json, what it means)
    "lab_accuracy": (_truth("lab", "smoothed_accuracy"), "smoothed labels right, lab-domain frames of a known class"),
    "lab_raw_accuracy": (_truth("lab", "raw_accuracy"), "per-frame answers right, lab-domain frames"),
    "stress_coverage": (_stress_coverage, "stress-domain frames answered (not unknown), smoothed"),
    "stress_confidently_wrong": (_truth("stress", "smoothed_confidently_wrong"),
                                 "stress-domain frames answered with a wrong class, smoothed"),
    "switch_ratio": (_switch_ratio, "label switches, smoothed / raw"),
    "latency_p99_ms": (_latency_p99, "p99 latency, end to end where measured, else preprocess + inference"),
    "throughput_fps": (lambda out: out.get("throughput_fps"), "frames classified per second of replay"),
    "overhead_ratio": (lambda out: out.get("overhead", {}).get("ratio"), "classifier / bare resize+invoke"),
    "dropped_share": (_dropped_share, "sampled frames dropped (real-time replay)"),
    "bad_frames": (lambda out: out.get("frames", {}).get("bad"), "frames unreadable or rejected"),
}
DEFAULT_REQUIREMENTS = ("lab_accuracy>=0.97", "stress_confidently_wrong<=0.01")
_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_PATTERN = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|==|>|<)\s*([-+0-9.eE]+)\s*$")


def parse(text: str) -> tuple[str, str, float]:
    """'lab_accuracy>=0.97' -> ('lab_accuracy', '>=', 0.97); a clear error for anything else."""
    match = _PATTERN.match(text)
    if not match:
        raise GlasswareError(f"requirement {text!r}: write METRIC OP NUMBER, e.g. lab_accuracy>=0.97")
    name, op, number = match.groups()
    if name not in METRICS:
        raise GlasswareError(f"requirement {text!r}: unknown metric {name!r}; known: {', '.join(METRICS)}")
    try:
        return name, op, float(number)
    except ValueError:
        raise GlasswareError(f"requirement {text!r}: {number!r} is not a number") from None


def check(out: dict, requirements: list[str] | None = None) -> list[dict]:
    """Each requirement with its measured value and whether it is met. `None`: the defaults, skipping those
    this replay did not measure."""
    explicit = requirements is not None
    results = []
    for text in (requirements if explicit else DEFAULT_REQUIREMENTS):
        name, op, limit = parse(text)
        measured = METRICS[name][0](out)
        if measured is None and not explicit:
            continue
        met = measured is not None and _OPERATORS[op](measured, limit)
        results.append({"requirement": f"{name}{op}{limit:g}", "measured": measured, "met": bool(met)})
    return results


def all_met(results: list[dict]) -> bool:
    return all(r["met"] for r in results)
