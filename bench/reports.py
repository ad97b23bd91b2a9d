"""7. Reports: the printed drill report (A4 PDF, Japanese) for a 10,000-person drill broadcast, and the CSV export
of a 100,000-person broadcast.

* 7a: ``reports.service.report_pdf`` for a notification-test drill linked to a drill broadcast of 10,000 people
  (answers over 30 minutes, three attempts each): figures from the database, charts, tables, the whole PDF.
  The target is absolute; the baseline column shows it.
* 7b: ``lifeline broadcast export`` (the CLI command, run in-process: ``ivr.views.csv_lines`` +
  ``encode_csv``, UTF-8 with BOM) of 100,000 rows to a file; baseline: ``csv.writer`` writing the same rows,
  already in memory, to a file — the serialisation alone.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from bench.harness import Context, Figure, analyze, make_app, pending

NAME = "reports"
USES_DATABASE = True
PDF_MAX_S = 5.0
CSV_MAX_S = 5.0


def run(ctx: Context) -> list[Figure]:
    from bench.live_results import build
    from core import db
    from ivr import service
    from ivr.views import csv_lines, encode_csv

    figures: list[Figure] = []
    app = make_app(ctx)
    with app.app_context():
        pdf_people = ctx.size(2_000, 10_000)
        organization_id, pdf_broadcast, _ = build(ctx, pdf_people)
        _, csv_broadcast, _ = build(ctx, ctx.size(10_000, 100_000))
        analyze(ctx.url)
        try:
            from reports import service as reports_service
        except ImportError as exc:
            figures.append(pending("7a", "drill report PDF", ctx.database, f"< {PDF_MAX_S:g} s", str(exc)))
        else:
            drill = reports_service.create_drill(
                organization_id=organization_id,
                type="notification_test",
                scenario="earthquake",
                title="Bench notification drill",
                actor="bench",
            )
            reports_service.link_broadcast(drill=drill, broadcast_id=pdf_broadcast, actor="bench")
            db.session.commit()
            runs = []
            for _ in range(ctx.size(1, 3)):
                started = time.perf_counter()
                body = reports_service.report_pdf(drill=drill, language="ja")
                runs.append(time.perf_counter() - started)
                db.session.commit()
            measured = min(runs)
            figures.append(
                Figure(
                    item="7a",
                    name=f"drill report PDF (ja), {pdf_people:,}-person drill broadcast",
                    database=ctx.database,
                    measured=measured,
                    unit="s",
                    baseline=PDF_MAX_S,
                    baseline_label="target",
                    ratio=measured / PDF_MAX_S,
                    ratio_label="measured ÷ target",
                    target=f"< {PDF_MAX_S:g} s",
                    passed=measured < PDF_MAX_S,
                    note=f"{len(body) // 1024} KiB, {body.count(b'/Type /Page') - body.count(b'/Type /Pages')} "
                    f"pages; best of {len(runs)}: " + ", ".join(f"{r:.2f} s" for r in runs),
                )
            )

        broadcast = service.get_broadcast(broadcast_id=csv_broadcast)
        scenario = service.snapshot(broadcast)
        out = ctx.scratch / "export.csv"
        started = time.perf_counter()
        with out.open("wb") as fh:
            for chunk in encode_csv(csv_lines(csv_broadcast, None, scenario), "utf-8"):
                fh.write(chunk)
        measured = time.perf_counter() - started
        db.session.commit()
        with out.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
        baseline_out = ctx.scratch / "baseline.csv"
        started = time.perf_counter()
        with baseline_out.open("w", encoding="utf-8-sig", newline="") as fh:
            csv.writer(fh, lineterminator="\r\n").writerows(rows)
        baseline = time.perf_counter() - started
        assert len(rows) - 1 == service.broadcast_status(broadcast_id=csv_broadcast)["recipients"]
        db.session.commit()
        size = Path(out).stat().st_size
        figures.append(
            Figure(
                item="7b",
                name=f"CSV export, {len(rows) - 1:,} rows (lifeline broadcast export)",
                database=ctx.database,
                measured=measured,
                unit="s",
                baseline=baseline,
                baseline_label="csv.writer of the same rows from memory",
                ratio=measured / baseline,
                ratio_label="measured ÷ baseline",
                target=f"< {CSV_MAX_S:g} s",
                passed=measured < CSV_MAX_S,
                note=f"{size / 1024 / 1024:.1f} MiB",
            )
        )
    return figures
