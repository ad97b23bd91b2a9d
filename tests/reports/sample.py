"""A realistic fabricated report (no database): 120 people in six departments at two sites, a failover and a
long observation log, so the PDF has to split tables across pages."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from reports import metrics
from reports.document import (
    ActionRow,
    BroadcastSection,
    ComparisonSection,
    DrillReport,
    FailoverSection,
    ParticipantRow,
    PersonRow,
    RoutingRow,
    TimelineRow,
)

START = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)  # 09:30 in Tokyo
DEPARTMENTS = [
    "営業部",
    "カスタマーサポート第一課",
    "カスタマーサポート第二課",
    "総務部",
    "情報システム部",
    "Quality",
]
SITES = ["TKY", "OSA"]


def sample_facts(seed: int = 7, people: int = 120) -> list[metrics.RecipientFact]:
    rng = random.Random(seed)
    facts = []
    for n in range(people):
        department = DEPARTMENTS[n % len(DEPARTMENTS)]
        answered = rng.random() < (0.93 if department != "総務部" else 0.6)
        at = START + timedelta(seconds=rng.expovariate(1 / 420)) if answered else None
        facts.append(metrics.RecipientFact(department=department, site=SITES[n % 2], answered_at=at))
    return facts


def sample_report(*, language: str = "ja", log_lines: int = 60) -> DrillReport:
    facts = sample_facts()
    answered = [f.answered_at for f in facts]
    total = len(facts)
    times = metrics.times_to_percentiles(START, answered, total)
    by_department = metrics.group_figures(START, facts, lambda f: f.department)
    by_site = metrics.group_figures(START, facts, lambda f: f.site)
    unreachable = [
        metrics.UnreachableContact(
            person=f"山田 太郎{n}",
            department=DEPARTMENTS[n % len(DEPARTMENTS)],
            site="TKY",
            contact_label="work phone +81 90-****-00" + f"{n:02d}",
            channels=("voice",),
            attempts=3,
            last_state="failed" if n % 2 else "no_answer",
            error_code="21211" if n % 2 else None,
            error_reason="invalid 'To' number" if n % 2 else None,
        )
        for n in range(7)
    ]
    people = [
        PersonRow(
            employee_id=f"E{n:05d}",
            name=f"佐藤 花子{n}",
            department="総務部",
            site="OSA",
            last_attempt="voice no_answer",
        )
        for n in range(sum(1 for a in answered if a is None))
    ]
    decision = START + timedelta(minutes=20)
    calls = [
        metrics.CallFact(
            started_at=decision + timedelta(minutes=n),
            ended_at=decision + timedelta(minutes=n, seconds=90),
            outcome="completed" if n % 4 else "voicemail",
            legs=(
                metrics.LegFact(
                    kind="site",
                    site_code="OSA",
                    outcome="completed" if n % 4 else "no-answer",
                    started_at=decision + timedelta(minutes=n, seconds=5),
                    ended_at=decision + timedelta(minutes=n, seconds=90),
                    duration_s=60 if n % 4 else None,
                ),
            ),
        )
        for n in range(1, 13)
    ]
    failover = metrics.failover_figures(decision_at=decision, calls=calls, alternate_site="OSA")
    current = {
        "recipients": float(total),
        "answer_rate": metrics.rate(sum(1 for a in answered if a), total),
        "t50": times[50],
        "t90": times[90],
        "median": metrics.median_seconds(START, answered),
        "unreachable_contacts": float(len(unreachable)),
    }
    previous = [
        {"recipients": 118.0, "answer_rate": 84.0, "t50": 380.0, "t90": 2400.0, "median": 400.0},
        {"recipients": 115.0, "answer_rate": 80.5, "t50": 420.0, "t90": None, "median": 455.0},
    ]
    comparison = ComparisonSection(
        headers=["2026-02-10", "2026-01-13"],
        rows=metrics.compare(current, previous, list(current)),
        labels={
            "recipients": "対象者数",
            "answer_rate": "回答率",
            "t50": "50% 回答までの時間",
            "t90": "90% 回答までの時間",
            "median": "回答時間の中央値",
            "unreachable_contacts": "不達の連絡先",
        },
        units={
            "recipients": "count",
            "answer_rate": "percent",
            "t50": "seconds",
            "t90": "seconds",
            "median": "seconds",
            "unreachable_contacts": "count",
        },
    )
    timeline = [
        TimelineRow(
            at=START + timedelta(minutes=2 * n),
            source="観察" if n % 3 else "記録",
            actor=f"観察者{n % 4}",
            text=(
                "大阪センターへの切替後、待ち呼が一時的に増加。IVR の案内文が古い内容のままだった。"
                if n % 5 == 0
                else f"Observation {n}: agents logged in at the alternate site without problems."
            ),
        )
        for n in range(log_lines)
    ]
    issues = [t for t in timeline if t.text.startswith("大阪")][:4]
    actions = [
        ActionRow(
            id=10 + n,
            title=["IVR の案内文を更新する", "総務部の連絡先を再登録", "Update the failover runbook"][n % 3],
            detail="次回訓練までに完了" if n == 0 else "",
            owner=["情報システム部 鈴木", "総務部 田中", "BCP office"][n % 3],
            due_on=date(2026, 4, 30),
            status=["open", "in_progress", "done"][n % 3],
            status_label=["未着手", "対応中", "完了"][n % 3],
            raised_in="2026年2月 地震訓練" if n % 2 else "この訓練",
            carried_over=bool(n % 2),
            overdue=n == 1,
        )
        for n in range(5)
    ]
    return DrillReport(
        id=42,
        language=language,
        timezone="Asia/Tokyo",
        organization="株式会社ライフライン・コンタクトセンター",
        kind="drill",
        title="2026年3月 地震想定 安否確認・代替拠点切替訓練",
        type_label="代替拠点への移転" if language == "ja" else "Relocation to the alternate site",
        scenario_label="地震" if language == "ja" else "Earthquake",
        state_label="完了" if language == "ja" else "Completed",
        planned_start=START,
        planned_end=START + timedelta(hours=2),
        actual_start=START + timedelta(minutes=1),
        actual_end=START + timedelta(hours=1, minutes=50),
        objectives="震度6強を想定し、全従業員の安否を30分以内に90%確認する。\n東京本社の停止を想定し、大阪センターで着信を受ける。",
        summary="回答率は前回より改善したが、総務部の回答率が低い。IVR 案内の更新が必要。",
        generated_at=START + timedelta(days=1),
        participants=[
            ParticipantRow(
                name=f"参加者 {n}", role=["統制", "プレイヤー", "評価者"][n % 3], affiliation="BCP事務局"
            )
            for n in range(8)
        ],
        broadcast=BroadcastSection(
            id=7,
            title="【訓練】地震 安否確認",
            state="終了" if language == "ja" else "closed",
            started_at=START,
            closed_at=START + timedelta(hours=2),
            recipients=total,
            answered=sum(1 for a in answered if a),
            unreached=sum(1 for a in answered if a is None),
            in_progress=0,
            answer_rate=metrics.rate(sum(1 for a in answered if a), total),
            times=times,
            median_seconds=metrics.median_seconds(START, answered),
            curve=metrics.answer_curve(START, answered, total),
            by_department=by_department,
            by_site=by_site,
            unreachable_contacts=unreachable,
            unreached_people=people,
            unreached_people_total=len(people),
        ),
        failover=FailoverSection(
            figures=failover,
            changes=[
                RoutingRow(
                    at=decision,
                    actor="supervisor@example.com",
                    summary="site TKY: normal → down",
                    reason="訓練: 東京本社停止",
                    is_decision=True,
                ),
                RoutingRow(
                    at=decision + timedelta(minutes=60),
                    actor="supervisor@example.com",
                    summary="site TKY: down → normal",
                    reason="訓練終了",
                ),
            ],
            alternate_site_label="OSA 大阪センター",
            down_site_label="TKY 東京本社",
        ),
        timeline=timeline,
        observations=timeline,
        issues=issues,
        actions=actions,
        comparison=comparison,
    )
