"""The activation checklist each kind of incident starts with. Pure: plain data, no database.

Every playbook follows the same four phases — initial response, telling customers and partners, emergency
measures, recovery — so a commander finds the same shape whatever happened; the steps differ by type.
"""

from __future__ import annotations

from dataclasses import dataclass

PHASES: tuple[str, ...] = ("initial_response", "notify", "emergency_measures", "recovery")
PHASE_LABELS: dict[str, tuple[str, str]] = {
    "initial_response": ("初動対応", "Initial response"),
    "notify": ("顧客・取引先への連絡", "Notify customers and partners"),
    "emergency_measures": ("緊急対策", "Emergency measures"),
    "recovery": ("復旧", "Recovery"),
}


@dataclass(frozen=True)
class DefaultStep:
    phase: str
    title_ja: str
    title_en: str


def _s(phase: str, ja: str, en: str) -> DefaultStep:
    return DefaultStep(phase=phase, title_ja=ja, title_en=en)


_SAFETY_FIRST = (
    _s("initial_response", "従業員の安全確保・避難", "Keep staff safe; evacuate if needed"),
    _s("initial_response", "対策本部の設置・指揮者の確認", "Set up the response team; confirm the commander"),
    _s("initial_response", "安否確認の実施", "Run the safety check (安否確認)"),
    _s("initial_response", "被害状況の把握", "Assess the damage at every site"),
)
_NOTIFY = (
    _s("notify", "ステータスページの更新", "Update the public status page"),
    _s("notify", "取引先・顧客への連絡", "Notify customers and partners"),
    _s("notify", "従業員への指示の掲示", "Post instructions for staff on the board"),
)
_RECOVERY = (
    _s("recovery", "復旧計画の策定", "Draw up the recovery plan"),
    _s(
        "recovery",
        "通常体制への復帰・ステータスページの更新",
        "Return to normal operation; update the status page",
    ),
    _s("recovery", "振り返りと是正処置の登録", "Hold the review; record corrective actions"),
)

DEFAULT_STEPS: dict[str, tuple[DefaultStep, ...]] = {
    "earthquake": (
        *_SAFETY_FIRST,
        _s("initial_response", "建物・設備の安全点検", "Check buildings and equipment are safe to use"),
        *_NOTIFY,
        _s("emergency_measures", "重要書類・データの保護", "Protect vital records and data"),
        _s("emergency_measures", "代替拠点への切替", "Switch calls to the alternate site"),
        _s("emergency_measures", "在宅勤務者の招集", "Call in staff who can work from home"),
        _s("emergency_measures", "備蓄品の配布", "Hand out stockpiled supplies"),
        _s("emergency_measures", "帰宅困難者への対応", "Look after staff who cannot get home"),
        *_RECOVERY,
    ),
    "tsunami": (
        _s(
            "initial_response",
            "沿岸拠点の即時避難(高台・上層階へ)",
            "Evacuate coastal sites at once (high ground)",
        ),
        *_SAFETY_FIRST[1:],
        *_NOTIFY,
        _s("emergency_measures", "代替拠点への切替", "Switch calls to the alternate site"),
        _s("emergency_measures", "重要書類・データの保護", "Protect vital records and data"),
        _s(
            "emergency_measures",
            "警報解除まで沿岸拠点への立入禁止",
            "Keep everyone out of coastal sites until the all-clear",
        ),
        *_RECOVERY,
    ),
    "heavy_rain": (
        _s("initial_response", "気象情報・避難情報の確認", "Follow weather warnings and evacuation orders"),
        *_SAFETY_FIRST,
        _s(
            "initial_response",
            "出社・帰宅判断(計画運休の確認)",
            "Decide on commuting (check planned train suspensions)",
        ),
        *_NOTIFY,
        _s(
            "emergency_measures",
            "浸水対策(止水板・機器の移動)",
            "Flood protection: barriers, move equipment up",
        ),
        _s("emergency_measures", "重要書類・データの保護", "Protect vital records and data"),
        _s("emergency_measures", "代替拠点・在宅勤務への切替", "Switch to the alternate site or home agents"),
        *_RECOVERY,
    ),
    "pandemic": (
        _s(
            "initial_response",
            "感染状況・行政要請の確認",
            "Follow the outbreak and the authorities' requests",
        ),
        _s(
            "initial_response",
            "対策本部の設置・指揮者の確認",
            "Set up the response team; confirm the commander",
        ),
        _s("initial_response", "健康確認の実施", "Run the health check"),
        _s("initial_response", "欠勤見込みと要員の把握", "Estimate absences and available staff"),
        *_NOTIFY,
        _s("emergency_measures", "在宅勤務・分散勤務への切替", "Switch to home and split-shift work"),
        _s("emergency_measures", "拠点の消毒・座席間隔の確保", "Disinfect sites; space out seats"),
        _s("emergency_measures", "重要業務の絞り込み", "Focus on critical services"),
        *_RECOVERY,
    ),
    "system_outage": (
        _s("initial_response", "影響範囲の特定", "Find out what is affected"),
        _s(
            "initial_response",
            "対策本部の設置・指揮者の確認",
            "Set up the response team; confirm the commander",
        ),
        _s("initial_response", "ベンダー・システム部門への連絡", "Call the vendor and the IT department"),
        _s("initial_response", "勤務確認の実施", "Run the work check"),
        *_NOTIFY,
        _s(
            "emergency_measures",
            "代替手段(紙・手動運用)への切替",
            "Switch to the fallback procedure (paper, manual)",
        ),
        _s("emergency_measures", "重要書類・データの保護", "Protect vital records and data"),
        _s(
            "emergency_measures", "IVR緊急アナウンスの設定", "Turn on the emergency announcement on the lines"
        ),
        *_RECOVERY,
    ),
    "other": (
        *_SAFETY_FIRST,
        *_NOTIFY,
        _s("emergency_measures", "重要書類・データの保護", "Protect vital records and data"),
        *_RECOVERY,
    ),
}


def default_steps(incident_type: str) -> tuple[DefaultStep, ...]:
    """The playbook of ``incident_type`` (the generic one for an unknown type), in phase order."""
    steps = DEFAULT_STEPS.get(incident_type, DEFAULT_STEPS["other"])
    return tuple(sorted(steps, key=lambda s: PHASES.index(s.phase)))
