"""The CSV export of a broadcast: exactly the expected bytes, through the page and through the CLI.

The broadcast has people on two sites, in several departments and in none, answers changed and given on several
channels, free text (quotes, commas, a character Shift_JIS cannot hold), an executive hidden from answer views, and
people of a second broadcast in between its own (widened later), whose answers must not leak in. The export reads
people in chunks and encodes lines in batches; both are shrunk here so that one export spans several of each.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import db
from core.auth.models import Role
from ivr import service, views
from ivr.models import Recipient, RecipientState
from tests.factories import login, make_staff, make_user
from tests.ivr.conftest import NOW

HEADER = "employee_id,name,department,site,state,answer_channel,answered_at,safety,work,free_text"


def at(minutes: int) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


# What each person of the world (by index; 8 is a ninth person with no site and no department) shows in the
# export: {emp}/{name} are their own, {hidden} the placeholder for an executive.
EXPECTED = {
    0: ",{hidden},Sales,TYO,answered,web,{t1},2,,",  # hidden: no employee id, no name, no free text
    1: "{emp},山田 太郎,Sales East,TYO,answered,web,{t2},1,2,無事です🙂",
    2: "{emp},{name},Support,TYO,answered,web,{t3},3,,",  # first answered by SMS, changed on the web
    3: "{emp},{name},Support,TYO,unreached,,,,,",
    4: "{emp},{name},Sales,OSA,answered,web,{t4},1,1,駅にいます 家族も無事",  # voice message, then web text
    5: "{emp},{name},Support,OSA,pending,,,,,",
    6: '{emp},{name},Support,OSA,answered,sms,{t6},4,3,"He said ""ok"", fine"',
    7: "{emp},{name},Sales East,OSA,pending,,,,,",
    8: "{emp},{name},,,answered,web,{t8},2,1,",
}
# What differs in Shift_JIS: the emoji has no code there and becomes "?", the rest of the line intact.
CP932 = {"🙂": "?"}

READERS = {
    "org-wide": (None, range(9)),
    "Tokyo manager": ("TYO", range(4)),
    "Osaka manager": ("OSA", range(4, 8)),
}


@dataclass
class Exported:
    broadcast_id: int
    # person index → recipient id, in the broadcast's own id order
    recipients: dict[int, int]
    expected: dict[str, dict[int, str]]  # encoding → person index → CSV line


@pytest.fixture()
def exported(world) -> Exported:
    staff = [*world.staff, make_staff(world.org, phone="+819000000199", email="p8@example.com")]
    staff[0].hide_from_answer_views = True
    staff[1].name = "山田 太郎"
    db.session.flush()
    # Tokyo first; a second broadcast to everyone; then the first one widened to everyone: the first broadcast's
    # Osaka people get ids after the second broadcast's people.
    first = service.start_broadcast(
        organization_id=world.org.id, template="earthquake", audience={"sites": ["TYO"]}, actor="t", now=NOW
    )
    other = service.start_broadcast(
        organization_id=world.org.id, template="earthquake", audience={"everyone": True}, actor="t", now=NOW
    )
    service.widen_broadcast(broadcast_id=first.id, audience={"everyone": True}, actor="t", now=NOW)

    def people_of(broadcast_id: int) -> dict[int, Recipient]:
        rows = db.session.scalars(select(Recipient).where(Recipient.broadcast_id == broadcast_id))
        by_staff = {r.staff_id: r for r in rows}
        return {n: by_staff[s.id] for n, s in enumerate(staff)}

    mine, theirs = people_of(first.id), people_of(other.id)
    assert min(r.id for r in theirs.values()) < mine[4].id  # the two broadcasts' ids interleave

    def answer(
        person: Recipient, minutes: int, channel: str, free_text: str | None = None, **answers: str
    ) -> None:
        service.record_answers(
            recipient=person,
            answers=answers,
            channel=channel,
            free_text=free_text,
            now=NOW + timedelta(minutes=minutes),
        )

    for person in theirs.values():
        answer(person, 0, "web", "the other broadcast", safety="4", work="3")
    answer(mine[0], 1, "web", "自宅にいます", safety="2")
    answer(mine[1], 2, "web", "無事です🙂", safety="1", work="2")
    answer(mine[2], 3, "sms", safety="1")
    answer(mine[2], 5, "web", safety="3")
    mine[3].state = RecipientState.UNREACHED
    answer(mine[4], 4, "voice", "駅にいます", safety="1", work="1")
    answer(mine[4], 7, "web", "家族も無事")
    answer(mine[6], 6, "sms", 'He said "ok", fine', safety="4", work="3")
    answer(mine[8], 8, "web", safety="2", work="1")
    db.session.flush()

    times = {f"t{n}": at(n) for n in (1, 2, 3, 4, 6, 8)}
    expected: dict[str, dict[int, str]] = {"utf-8": {}, "cp932": {}}
    for n, line in EXPECTED.items():
        text = line.format(emp=staff[n].employee_id, name=staff[n].name, hidden=service.HIDDEN_NAME, **times)
        expected["utf-8"][n] = text
        for unmappable, shown in CP932.items():
            text = text.replace(unmappable, shown)
        expected["cp932"][n] = text
    return Exported(first.id, {n: r.id for n, r in mine.items()}, expected)


def expected_bytes(exported: Exported, encoding: str, people: range) -> bytes:
    ordered = sorted(people, key=lambda n: exported.recipients[n])  # the export is in recipient id order
    text = "".join(f"{line}\r\n" for line in [HEADER, *(exported.expected[encoding][n] for n in ordered)])
    body = text.encode(encoding)  # strict: every expected line is representable as it stands
    return codecs.BOM_UTF8 + body if encoding == "utf-8" else body


SIZES = [
    pytest.param(2, 3, id="chunks-of-2-batches-of-3"),
    pytest.param(service.EXPORT_CHUNK, views.CSV_BATCH, id="default-sizes"),
]


@pytest.mark.parametrize(("chunk", "batch"), SIZES)
@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
@pytest.mark.parametrize("reader", list(READERS))
def test_page_export_is_exactly_the_expected_csv(
    client, world, exported, monkeypatch, reader, encoding, chunk, batch
):
    monkeypatch.setattr(service, "EXPORT_CHUNK", chunk)
    monkeypatch.setattr(views, "CSV_BATCH", batch)
    site, people = READERS[reader]
    login(client, make_user(world.org, Role.MANAGER, sites=[world.sites[site]] if site else None))
    query = "?encoding=cp932" if encoding == "cp932" else ""
    response = client.get(f"/broadcasts/{exported.broadcast_id}/export.csv{query}")
    assert response.status_code == 200
    assert response.data == expected_bytes(exported, encoding, people)
    # One charset, the one the bytes are in (a second "charset=" parameter leaves the reader to guess).
    charset = "shift_jis" if encoding == "cp932" else "utf-8"
    assert response.headers["Content-Type"] == f"text/csv; charset={charset}"


@pytest.mark.parametrize(("chunk", "batch"), SIZES)
@pytest.mark.parametrize("encoding", ["utf-8", "cp932"])
def test_cli_export_is_exactly_the_expected_csv(app, exported, tmp_path, monkeypatch, encoding, chunk, batch):
    monkeypatch.setattr(service, "EXPORT_CHUNK", chunk)
    monkeypatch.setattr(views, "CSV_BATCH", batch)
    db.session.commit()
    target = tmp_path / "answers.csv"
    args = ["broadcast", "export", str(exported.broadcast_id), str(target)]
    result = app.test_cli_runner().invoke(args=[*args, "--cp932"] if encoding == "cp932" else args)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == expected_bytes(exported, encoding, range(9))


def test_export_rows_do_not_depend_on_the_chunk_size(world, exported, monkeypatch):
    whole = list(service.export_rows(broadcast_id=exported.broadcast_id))
    for chunk in (1, 2, 3, 8, 9, 10):
        monkeypatch.setattr(service, "EXPORT_CHUNK", chunk)
        assert list(service.export_rows(broadcast_id=exported.broadcast_id)) == whole
    assert [row.recipient_id for row in whole] == sorted(exported.recipients.values())
