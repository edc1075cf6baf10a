"""images, launch permissions, import tasks

Revision ID: i001
Revises: 0001
Create Date: 2026-11-27 10:06:09.841816
"""

import sqlalchemy as sa
from alembic import op

import karri.db.base

revision = "i001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("image_type", sa.String(length=16), nullable=False),
        sa.Column("architecture", sa.String(length=16), nullable=False),
        sa.Column("kernel_id", sa.String(length=32), nullable=True),
        sa.Column("ramdisk_id", sa.String(length=32), nullable=True),
        sa.Column("root_device_type", sa.String(length=16), nullable=False),
        sa.Column("root_device_name", sa.String(length=32), nullable=False),
        sa.Column("virtualization_type", sa.String(length=16), nullable=False),
        sa.Column("block_device_mappings", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("location", sa.String(length=1100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("stored_bucket", sa.String(length=64), nullable=True),
        sa.Column("stored_key", sa.String(length=1100), nullable=True),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_images_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_state"), ["state"], unique=False)

    op.create_table(
        "image_launch_permissions",
        sa.Column("image_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_launch_permissions_image_id_images"),
        ),
        sa.PrimaryKeyConstraint("image_id", "account_id", name=op.f("pk_image_launch_permissions")),
    )
    with op.batch_alter_table("image_launch_permissions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_image_launch_permissions_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "image_import_tasks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("architecture", sa.String(length=16), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("disk_format", sa.String(length=8), nullable=False),
        sa.Column("source_bucket", sa.String(length=64), nullable=False),
        sa.Column("source_key", sa.String(length=1100), nullable=False),
        sa.Column("disk_size", sa.BigInteger(), nullable=False),
        sa.Column("image_id", sa.String(length=32), nullable=True),
        sa.Column("client_token", sa.String(length=64), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_image_import_tasks_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_import_tasks")),
    )
    with op.batch_alter_table("image_import_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_image_import_tasks_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_image_import_tasks_status"), ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("image_import_tasks")
    op.drop_table("image_launch_permissions")
    op.drop_table("images")
