"""covering indexes for the live status

The broadcast status counts attempts by (channel, state) and people by department, site, prefecture, state and
answer channel; the overview's answer curve reads ``answered_at``. With these indexes every one of those counts
reads an index alone (an index-only scan on PostgreSQL once the table is vacuumed), not the rows.

Revision ID: aac943ddb00a
Revises: dfc5b7a25f10
Create Date: 2026-11-22 10:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "aac943ddb00a"
down_revision: str | None = "dfc5b7a25f10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ivr_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_ivr_attempts_counts", ["broadcast_id", "channel", "state"], unique=False)
    with op.batch_alter_table("ivr_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ivr_recipients_counts",
            [
                "broadcast_id",
                "department_id",
                "site_id",
                "prefecture",
                "state",
                "answer_channel",
                "answered_at",
            ],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("ivr_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_ivr_recipients_counts")
    with op.batch_alter_table("ivr_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_ivr_attempts_counts")
