"""``lifeline demo-data``: a fictional company to try Lifeline with — three call centers, about 300 people, one
demo user per role. Running it again changes nothing: what exists is left as it is, only what is missing is
added (with the passwords already written to the credentials file).

All names are generated from the small lists below with a fixed seed; all numbers are fictional
(+81 90-0000-xxxx) and all addresses are on example.com or do not exist.
"""

from __future__ import annotations

import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from core import crypto, db
from core.auth.models import ApiToken, Role, User
from core.auth.service import create_api_token, create_user, set_roles
from core.directory import service
from core.directory.importer import FIELDS, RawRow, StaffRecord
from core.directory.models import ContactKind, ContactPoint, Department, Organization, Site, Staff
from core.time import utcnow

ORG_SLUG = "demo"
ORG_NAME = "Lifeline デモ株式会社"
SEED = 20110311
CREDENTIALS_FILE = "demo_credentials.txt"
TOKEN_NAME = "HR sync (demo)"

# code, name, English name, prefecture, JMA municipality code, address (street numbers that do not exist), seats
SITES: tuple[tuple[str, str, str, str, str, str, int], ...] = (
    # 新宿区 as in the JMA heavy-rain sample (tests/fixtures/jma/15_14_01_170216_VPWW53.xml), so it hits Tokyo.
    ("TKY", "東京本社", "Tokyo head office", "13", "1310400", "東京都新宿区西新宿9丁目99-9 デモビル", 120),
    (
        "OSA",
        "大阪コールセンター",
        "Osaka call center",
        "27",
        "2712700",
        "大阪府大阪市北区梅田9丁目99-9",
        80,
    ),  # 大阪市北区
    (
        "FUK",
        "福岡コールセンター",
        "Fukuoka call center",
        "40",
        "4013200",
        "福岡県福岡市博多区博多駅前9丁目99-9",
        70,
    ),  # 博多区
)
# name, parent
DEPARTMENTS: tuple[tuple[str, str | None], ...] = (
    ("経営企画室", None),
    ("総務部", None),
    ("人事部", None),
    ("情報システム部", None),
    ("コールセンター本部", None),
    ("東京受付", "コールセンター本部"),
    ("大阪受付", "コールセンター本部"),
    ("福岡受付", "コールセンター本部"),
)
# department, site, head count — 300 in all; the first person of a department leads it.
GROUPS: tuple[tuple[str, str, int], ...] = (
    ("経営企画室", "TKY", 8),
    ("総務部", "TKY", 8),
    ("人事部", "TKY", 10),
    ("情報システム部", "TKY", 14),
    ("コールセンター本部", "TKY", 10),
    ("東京受付", "TKY", 100),
    ("大阪受付", "OSA", 75),
    ("福岡受付", "FUK", 65),
    ("総務部", "OSA", 3),
    ("総務部", "FUK", 3),
    ("情報システム部", "OSA", 4),
)
EXECUTIVES = ("E0001", "E0002", "E0003")  # hidden from answer views
# Where people live: mostly the site's prefecture, some commute from a neighbouring one.
HOME_PREFECTURES = {
    "TKY": (("13", 60), ("11", 14), ("12", 10), ("14", 16)),
    "OSA": (("27", 70), ("28", 14), ("26", 8), ("29", 8)),
    "FUK": (("40", 84), ("41", 8), ("43", 4), ("44", 4)),
}
FAMILY_NAMES = (
    ("佐藤", "サトウ", "sato"), ("鈴木", "スズキ", "suzuki"), ("高橋", "タカハシ", "takahashi"),
    ("田中", "タナカ", "tanaka"), ("伊藤", "イトウ", "ito"), ("渡辺", "ワタナベ", "watanabe"),
    ("山本", "ヤマモト", "yamamoto"), ("中村", "ナカムラ", "nakamura"), ("小林", "コバヤシ", "kobayashi"),
    ("加藤", "カトウ", "kato"), ("吉田", "ヨシダ", "yoshida"), ("山田", "ヤマダ", "yamada"),
    ("佐々木", "ササキ", "sasaki"), ("山口", "ヤマグチ", "yamaguchi"), ("松本", "マツモト", "matsumoto"),
    ("井上", "イノウエ", "inoue"), ("木村", "キムラ", "kimura"), ("林", "ハヤシ", "hayashi"),
    ("斎藤", "サイトウ", "saito"), ("清水", "シミズ", "shimizu"), ("山崎", "ヤマザキ", "yamazaki"),
    ("森", "モリ", "mori"), ("池田", "イケダ", "ikeda"), ("橋本", "ハシモト", "hashimoto"),
    ("阿部", "アベ", "abe"), ("石川", "イシカワ", "ishikawa"), ("山下", "ヤマシタ", "yamashita"),
    ("中島", "ナカジマ", "nakajima"), ("石井", "イシイ", "ishii"), ("小川", "オガワ", "ogawa"),
    ("前田", "マエダ", "maeda"), ("岡田", "オカダ", "okada"), ("長谷川", "ハセガワ", "hasegawa"),
    ("藤田", "フジタ", "fujita"), ("後藤", "ゴトウ", "goto"), ("近藤", "コンドウ", "kondo"),
    ("村上", "ムラカミ", "murakami"), ("遠藤", "エンドウ", "endo"), ("青木", "アオキ", "aoki"),
    ("坂本", "サカモト", "sakamoto"),
)  # fmt: skip
GIVEN_NAMES = (
    ("太郎", "タロウ", "taro"), ("翔太", "ショウタ", "shota"), ("大輔", "ダイスケ", "daisuke"),
    ("健太", "ケンタ", "kenta"), ("拓也", "タクヤ", "takuya"), ("直樹", "ナオキ", "naoki"),
    ("亮", "リョウ", "ryo"), ("誠", "マコト", "makoto"), ("悠斗", "ユウト", "yuto"), ("蓮", "レン", "ren"),
    ("浩二", "コウジ", "koji"), ("隆", "タカシ", "takashi"), ("和也", "カズヤ", "kazuya"),
    ("陽介", "ヨウスケ", "yosuke"), ("洋平", "ヨウヘイ", "yohei"), ("花子", "ハナコ", "hanako"),
    ("美咲", "ミサキ", "misaki"), ("陽子", "ヨウコ", "yoko"), ("恵", "メグミ", "megumi"),
    ("由美", "ユミ", "yumi"), ("愛", "アイ", "ai"), ("真由美", "マユミ", "mayumi"), ("さくら", "サクラ", "sakura"),
    ("結衣", "ユイ", "yui"), ("彩", "アヤ", "aya"), ("智子", "トモコ", "tomoko"), ("裕子", "ユウコ", "yuko"),
    ("麻衣", "マイ", "mai"), ("奈々", "ナナ", "nana"), ("千尋", "チヒロ", "chihiro"), ("明美", "アケミ", "akemi"),
    ("香織", "カオリ", "kaori"),
)  # fmt: skip
ENGLISH_GIVEN = (
    ("Emily", "エミリー"), ("James", "ジェームズ"), ("Sarah", "サラ"), ("Michael", "マイケル"),
    ("Olivia", "オリビア"), ("Daniel", "ダニエル"), ("Grace", "グレース"), ("Thomas", "トーマス"),
)  # fmt: skip
ENGLISH_FAMILY = (
    ("Carter", "カーター"), ("Brown", "ブラウン"), ("Wilson", "ウィルソン"), ("Taylor", "テイラー"),
    ("Clarke", "クラーク"), ("Evans", "エバンス"), ("Walker", "ウォーカー"), ("Green", "グリーン"),
)  # fmt: skip
ENGLISH_SPEAKERS = 12
WORK_FROM_HOME_SHARE = 0.3
# A handful of people have already registered a private phone (and one a family contact).
PRIVATE_PHONES = {"E0005": "+819000000901", "E0042": "+819000000902", "E0120": "+819000000903",
                  "E0170": "+819000000904", "E0215": "+819000000905", "E0260": "+819000000906"}  # fmt: skip
FAMILY_PHONES = {"E0042": ("+819000000951", "配偶者")}

# e-mail, name, roles, scope (site codes), description in the credentials file
USERS: tuple[tuple[str, str, tuple[Role, ...], tuple[str, ...], str], ...] = (
    ("admin@example.com", "デモ 管理者", (Role.ADMIN,), (), "system admin"),
    ("crisis@example.com", "デモ 危機管理", (Role.CRISIS_MANAGER,), (), "crisis manager"),
    ("manager@example.com", "デモ 管理職", (Role.MANAGER,), (), "manager, whole organization"),
    ("supervisor@example.com", "デモ SV", (Role.SUPERVISOR,), (), "supervisor"),
    ("facilities@example.com", "デモ 総務", (Role.FACILITIES,), (), "facilities"),
    ("osaka.manager@example.com", "デモ 大阪管理職", (Role.MANAGER,), ("OSA",), "manager, Osaka site only"),
)


@dataclass
class DemoSummary:
    organization_created: bool = False
    sites_added: int = 0
    departments_added: int = 0
    staff_added: int = 0
    staff_total: int = 0
    users_created: list[str] = field(default_factory=list)
    users_without_password: list[str] = field(default_factory=list)
    token_created: bool = False
    credentials_file: Path | None = None

    @property
    def changed_anything(self) -> bool:
        return bool(
            self.organization_created
            or self.sites_added
            or self.departments_added
            or self.staff_added
            or self.users_created
            or self.token_created
        )


def demo_staff() -> list[StaffRecord]:
    """The same 300 people every time (seeded)."""
    rng = random.Random(SEED)
    total = sum(count for _, _, count in GROUPS)
    english = set(rng.sample(range(4, total + 1), ENGLISH_SPEAKERS))
    parents = dict(DEPARTMENTS)
    leaders: dict[str, str] = {}
    records: list[StaffRecord] = []
    n = 0
    for department, site, count in GROUPS:
        for _ in range(count):
            n += 1
            employee_id = f"E{n:04d}"
            if n in english:
                given_en, given_kana = rng.choice(ENGLISH_GIVEN)
                family_en, family_kana = rng.choice(ENGLISH_FAMILY)
                name, kana, language = f"{given_en} {family_en}", f"{given_kana} {family_kana}", "en"
                romaji = (given_en.lower(), family_en.lower())
            else:
                family, family_kana, family_romaji = rng.choice(FAMILY_NAMES)
                given, given_kana, given_romaji = rng.choice(GIVEN_NAMES)
                name, kana, language = f"{family} {given}", f"{family_kana} {given_kana}", "ja"
                romaji = (given_romaji, family_romaji)
            if department not in leaders:
                leaders[department] = employee_id
                parent = parents[department]
                manager = leaders[parent] if parent else ("" if n == 1 else "E0001")
            else:
                manager = leaders[department]
            codes = [code for code, _ in HOME_PREFECTURES[site]]
            weights = [weight for _, weight in HOME_PREFECTURES[site]]
            records.append(
                StaffRecord(
                    employee_id=employee_id,
                    name=name,
                    name_kana=kana,
                    department=department,
                    site=site,
                    work_phone=f"+8190000{n:05d}",
                    work_email=f"{romaji[0]}.{romaji[1]}.{n}@example.com",
                    home_prefecture=rng.choices(codes, weights)[0],
                    language=language,
                    can_work_from_home=rng.random() < WORK_FROM_HOME_SHARE,
                    manager_employee_id=manager,
                    line=n,
                )
            )
    return records


def _as_row(record: StaffRecord) -> RawRow:
    values = {}
    for name in FIELDS:
        value = record.get(name)
        values[name] = ("1" if value else "0") if isinstance(value, bool) else value
    return RawRow(number=record.line, values=values)


def read_credentials(path: Path) -> tuple[dict[str, str], str | None]:
    """e-mail → password, and the API token, from a credentials file written by an earlier run."""
    passwords: dict[str, str] = {}
    token = None
    if not path.exists():
        return passwords, None
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if len(words) >= 2 and "@" in words[0]:
            passwords[words[0]] = words[1]
        token = next((w for w in words if w.startswith("llt_")), token)
    return passwords, token


def _write_credentials(path: Path, passwords: dict[str, str], token: str | None) -> None:
    width = max(len(email) for email, *_ in USERS)
    lines = [
        f"{email.ljust(width)}  {passwords[email]}  ({description})"
        for email, _name, _roles, _scope, description in USERS
        if email in passwords
    ]
    if token:
        lines.append(f"{'HR sync API token'.ljust(width)}  {token}  (Authorization: Bearer …)")
    text = "\n".join(lines) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    temporary.replace(path)


def load_demo_data(*, instance_dir: Path, encryption_key: str) -> DemoSummary:
    summary = DemoSummary(credentials_file=instance_dir / CREDENTIALS_FILE)
    org = db.session.scalar(select(Organization).where(Organization.slug == ORG_SLUG))
    if org is None:
        org = Organization(slug=ORG_SLUG, name=ORG_NAME, timezone="Asia/Tokyo")
        db.session.add(org)
        db.session.flush()
        summary.organization_created = True

    sites = {s.code: s for s in service.sites_of(organization_id=org.id)}
    for code, name, name_en, prefecture, municipality, address, seats in SITES:
        if code not in sites:
            sites[code] = Site(
                organization_id=org.id,
                code=code,
                name=name,
                name_en=name_en,
                prefecture_code=prefecture,
                municipality_code=municipality,
                address=address,
                seats=seats,
            )
            db.session.add(sites[code])
            summary.sites_added += 1

    departments = {d.name: d for d in service.departments_of(organization_id=org.id)}
    for name, parent in DEPARTMENTS:
        if name not in departments:
            departments[name] = Department(
                organization_id=org.id, name=name, parent=departments[parent] if parent else None
            )
            db.session.add(departments[name])
            summary.departments_added += 1
    db.session.flush()

    present = set(db.session.scalars(select(Staff.employee_id).where(Staff.organization_id == org.id)))
    missing = [r for r in demo_staff() if r.employee_id not in present]
    if missing:
        plan = service.plan_rows(organization_id=org.id, rows=[_as_row(r) for r in missing], mode="update")
        if plan.errors:  # the generator and the importer disagree: a bug, not a user error
            raise RuntimeError(f"demo data fails the import checks: {plan.errors[0].text}")
        service.apply_import(plan=plan, skip_invalid=False, actor="demo-data", source="demo-data")
        summary.staff_added = len(plan.diff.added)
        _decorate(org.id, {r.employee_id for r in missing}, encryption_key)
    summary.staff_total = len(present) + summary.staff_added

    path = instance_dir / CREDENTIALS_FILE
    passwords, token = read_credentials(path)
    for email, name, roles, scope, _description in USERS:
        if db.session.scalar(select(User.id).where(User.email == email)) is not None:
            if email not in passwords:
                summary.users_without_password.append(email)
            continue
        password = passwords.get(email) or secrets.token_urlsafe(12)
        user = create_user(
            organization_id=org.id,
            email=email,
            name=name,
            password=password,
            roles=roles if not scope else (),
            actor="demo-data",
        )
        if scope:
            set_roles(
                user=user,
                assignments=[(role, [sites[code] for code in scope], []) for role in roles],
                actor="demo-data",
                actor_user_id=None,
            )
        passwords[email] = password
        summary.users_created.append(email)

    has_token = db.session.scalar(
        select(ApiToken.id).where(ApiToken.organization_id == org.id, ApiToken.name == TOKEN_NAME)
    )
    if has_token is None:
        token = create_api_token(organization_id=org.id, name=TOKEN_NAME, actor="demo-data")
        summary.token_created = True
    _write_credentials(path, passwords, token)
    return summary


def _decorate(organization_id: int, new_employee_ids: set[str], encryption_key: str) -> None:
    """What an import cannot set: executives hidden from answer views, contacts people registered themselves."""
    people = {
        p.employee_id: p
        for p in db.session.scalars(
            select(Staff).where(
                Staff.organization_id == organization_id, Staff.employee_id.in_(new_employee_ids)
            )
        )
    }
    now = utcnow()
    for employee_id in EXECUTIVES:
        if employee_id in people:
            people[employee_id].hide_from_answer_views = True
    for employee_id, phone in PRIVATE_PHONES.items():
        if employee_id in people:
            people[employee_id].contacts.append(
                ContactPoint(
                    kind=ContactKind.PRIVATE_PHONE,
                    position=10,
                    value_encrypted=crypto.encrypt(phone, encryption_key),
                    verified_at=now,
                )
            )
    for employee_id, (phone, label) in FAMILY_PHONES.items():
        if employee_id in people:
            people[employee_id].contacts.append(
                ContactPoint(
                    kind=ContactKind.FAMILY_PHONE,
                    position=20,
                    value_encrypted=crypto.encrypt(phone, encryption_key),
                    label=label,
                    verified_at=now,
                )
            )
    db.session.flush()
