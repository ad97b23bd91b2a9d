"""6a. JMA: the largest VXSE53 sample parsed by ``ivr.jma.parse.parse_bulletin``.

The issue names "the 400 KB Tohoku VXSE53 sample"; the genuine samples in tests/fixtures/jma/ hold no such file —
the largest VXSE53 there is ``32-35_07_06_240613_VXSE53.xml`` (≈ 292 KiB, maximum intensity 6-, hundreds of
stations), which is what is parsed here. Baseline: parsing the same bytes into an element tree with defusedxml
and nothing else — the floor any interpretation of the document sits on.
"""

from __future__ import annotations

from bench.harness import ROOT, Context, Figure, best_of

NAME = "jma_parse"
USES_DATABASE = False
MAX_MS = 50.0
SAMPLE = ROOT / "tests" / "fixtures" / "jma" / "32-35_07_06_240613_VXSE53.xml"


def run(ctx: Context) -> list[Figure]:
    import defusedxml.ElementTree as DefusedET

    from ivr.jma.parse import parse_bulletin

    data = SAMPLE.read_bytes()
    runs = ctx.size(10, 30)
    bulletin = parse_bulletin(data)
    measured = best_of(runs, lambda: parse_bulletin(data))
    baseline = best_of(runs, lambda: DefusedET.fromstring(data))
    return [
        Figure(
            item="6a",
            name=f"JMA parse, {SAMPLE.name} ({len(data) / 1024:.0f} KiB), best of {runs}",
            database="-",
            measured=measured,
            unit="s",
            baseline=baseline,
            baseline_label="defusedxml parse of the same bytes",
            ratio=measured / baseline,
            ratio_label="measured ÷ baseline",
            target=f"< {MAX_MS:g} ms",
            passed=measured * 1000 < MAX_MS,
            note=f"{bulletin.data_type}, max intensity {bulletin.max_intensity}, {len(bulletin.prefectures)} "
            f"prefectures, {len(bulletin.municipalities)} municipalities",
        )
    ]
