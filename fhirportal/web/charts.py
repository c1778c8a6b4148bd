"""Charts of a result over time, drawn on the server as SVG (no script, no third-party asset): the
values as a line of points (out-of-range points marked), the reference range shaded, the first and
last dates and the value scale labelled. Pure functions; the page also lists the values in a table,
which is what a screen reader reads (the SVG has a title and a description of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from .words import parse_moment, when

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 34


@dataclass(frozen=True)
class Point:
    moment: str  # a FHIR dateTime
    value: float
    out_of_range: bool = False


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[Point, ...]
    low: float | None = None  # the reference range, shaded
    high: float | None = None


def _time(moment: str) -> float:
    year, month, day, hour, minute = parse_moment(moment) or (1970, 1, 1, 0, 0)
    return datetime(year, month or 1, day or 1, hour or 0, minute or 0).timestamp()


def _nice(value: float) -> str:
    return f"{value:.3g}"


def line_chart(title: str, unit: str, series: list[Series], chart_id: str) -> Markup:
    """One chart (one or two series sharing a scale, e.g. systolic and diastolic pressure)."""
    points = [p for s in series for p in s.points]
    bounds = [p.value for p in points] + [v for s in series for v in (s.low, s.high) if v is not None]
    low, high = min(bounds), max(bounds)
    pad = (high - low) * 0.12 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    times = [_time(p.moment) for p in points]
    start, end = min(times), max(times)
    span = (end - start) or 1.0
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: str) -> float:
        return LEFT + (inner_w / 2 if end == start else (_time(moment) - start) / span * inner_w)

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * inner_h

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
             f'class="chart" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart_id}-t">{escape(title)}</title>',
             f'<desc id="{chart_id}-d">{escape(_description(series, unit))}</desc>']
    for s in series:
        if s.low is not None or s.high is not None:
            top = y(s.high if s.high is not None else high)
            bottom = y(s.low if s.low is not None else low)
            parts.append(f'<rect class="range" x="{LEFT}" y="{top:.1f}" width="{inner_w}" '
                         f'height="{max(bottom - top, 0):.1f}"/>')
    for value in (low + (high - low) * f for f in (0.1, 0.5, 0.9)):
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{_nice(value)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" '
                 f'y2="{HEIGHT - BOTTOM}"/>')
    first, last = min(points, key=lambda p: _time(p.moment)), max(points, key=lambda p: _time(p.moment))
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 12}">{escape(when(first.moment))}</text>')
    if last is not first:
        parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 12}" text-anchor="end">'
                     f'{escape(when(last.moment))}</text>')
    for index, s in enumerate(series):
        ordered = sorted(s.points, key=lambda p: _time(p.moment))
        extra = " second" if index else ""
        if len(ordered) > 1:
            path = " ".join(f"{x(p.moment):.1f},{y(p.value):.1f}" for p in ordered)
            parts.append(f'<polyline class="line{extra}" points="{path}"/>')
        for p in ordered:
            kind = " out" if p.out_of_range else extra
            parts.append(f'<circle class="point{kind}" cx="{x(p.moment):.1f}" cy="{y(p.value):.1f}" r="4.5"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _description(series: list[Series], unit: str) -> str:
    sentences = []
    for s in series:
        ordered = sorted(s.points, key=lambda p: _time(p.moment))
        text = f"{s.label}: {len(ordered)} values from {when(ordered[0].moment)} to {when(ordered[-1].moment)}, " \
               f"latest {_nice(ordered[-1].value)} {unit}".rstrip()
        if s.low is not None or s.high is not None:
            text += f"; shaded range {_range_text(s.low, s.high, unit)}"
        sentences.append(text + ".")
    return " ".join(sentences)


def _range_text(low: float | None, high: float | None, unit: str) -> str:
    if low is not None and high is not None:
        return f"{_nice(low)}–{_nice(high)} {unit}".strip()
    if low is not None:
        return f"at least {_nice(low)} {unit}".strip()
    return f"up to {_nice(high)} {unit}".strip()
