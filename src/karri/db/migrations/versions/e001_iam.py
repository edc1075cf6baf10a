"""IAM (Euare): users, groups, roles, managed and inline policies, access keys,
instance profiles, account aliases, STS sessions

Revision ID: e001
Revises: 0001
Create Date: 2026-12-05 20:40:00
"""

import sqlalchemy as sa
from alembic import op

import karri.db.base

revision = "e001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "iam_account_aliases",
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("alias", sa.String(length=63), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_iam_account_aliases_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_iam_account_aliases")),
        sa.UniqueConstraint("alias", name=op.f("uq_iam_account_aliases_alias")),
    )
    op.create_table(
        "iam_attachments",
        sa.Column("entity_id", sa.String(length=32), nullable=False),
        sa.Column("policy_arn", sa.String(length=2048), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("entity_kind", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_iam_attachments_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("entity_id", "policy_arn", name=op.f("pk_iam_attachments")),
    )
    with op.batch_alter_table("iam_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_iam_attachments_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_iam_attachments_policy_arn"), ["policy_arn"], unique=False
        )

    op.create_table(
        "iam_groups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_iam_groups_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iam_groups")),
        sa.UniqueConstraint("account_id", "name_key", name=op.f("uq_iam_groups_account_id")),
    )
    with op.batch_alter_table("iam_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_iam_groups_account_id"), ["account_id"], unique=False)

    op.create_table(
        "iam_inline_policies",
        sa.Column("entity_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_iam_inline_policies_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("entity_id", "name", name=op.f("pk_iam_inline_policies")),
    )
    with op.batch_alter_table("iam_inline_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_iam_inline_policies_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "iam_policies",
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("default_version", sa.String(length=16), nullable=False),
        sa.Column("next_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_iam_policies_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iam_policies")),
        sa.UniqueConstraint("account_id", "name_key", name=op.f("uq_iam_policies_account_id")),
    )
    with op.batch_alter_table("iam_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_iam_policies_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "iam_roles",
        sa.Column("trust_policy", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("max_session_duration", sa.Integer(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_iam_roles_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iam_roles")),
        sa.UniqueConstraint("account_id", "name_key", name=op.f("uq_iam_roles_account_id")),
    )
    with op.batch_alter_table("iam_roles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_iam_roles_account_id"), ["account_id"], unique=False)

    op.create_table(
        "iam_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("role_id", sa.String(length=32), nullable=True),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("session_name", sa.String(length=64), nullable=False),
        sa.Column("session_policies", sa.Text(), nullable=False),
        sa.Column("source_identity", sa.String(length=64), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_iam_sessions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iam_sessions")),
    )
    with op.batch_alter_table("iam_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_iam_sessions_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_iam_sessions_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "iam_users",
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_iam_users_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iam_users")),
        sa.UniqueConstraint("account_id", "name_key", name=op.f("uq_iam_users_account_id")),
    )
    with op.batch_alter_table("iam_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_iam_users_account_id"), ["account_id"], unique=False)

    op.create_table(
        "iam_access_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", karri.db.base.UTCDateTime(), nullable=True),
        sa.Column("last_used_service", sa.String(length=32), nullable=True),
        sa.Column("last_used_region", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_iam_access_keys_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["iam_users.id"], name=op.f("fk_iam_access_keys_user_id_iam_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iam_access_keys")),
    )
    with op.batch_alter_table("iam_access_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_iam_access_keys_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_iam_access_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "iam_group_members",
        sa.Column("group_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["iam_groups.id"], name=op.f("fk_iam_group_members_group_id_iam_groups")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["iam_users.id"], name=op.f("fk_iam_group_members_user_id_iam_users")
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_iam_group_members")),
    )
    with op.batch_alter_table("iam_group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_iam_group_members_user_id"), ["user_id"], unique=False)

    op.create_table(
        "iam_instance_profiles",
        sa.Column("role_id", sa.String(length=32), nullable=True),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_iam_instance_profiles_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["role_id"], ["iam_roles.id"], name=op.f("fk_iam_instance_profiles_role_id_iam_roles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iam_instance_profiles")),
        sa.UniqueConstraint(
            "account_id", "name_key", name=op.f("uq_iam_instance_profiles_account_id")
        ),
    )
    with op.batch_alter_table("iam_instance_profiles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_iam_instance_profiles_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "iam_policy_versions",
        sa.Column("policy_id", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.String(length=16), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["iam_policies.id"],
            name=op.f("fk_iam_policy_versions_policy_id_iam_policies"),
        ),
        sa.PrimaryKeyConstraint("policy_id", "version_id", name=op.f("pk_iam_policy_versions")),
    )
    op.create_table(
        "iam_login_profiles",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("reset_required", sa.Boolean(), nullable=False),
        sa.Column("created_at", karri.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["iam_users.id"],
            name=op.f("fk_iam_login_profiles_user_id_iam_users"),
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_iam_login_profiles")),
    )


def downgrade() -> None:
    op.drop_table("iam_login_profiles")
    op.drop_table("iam_policy_versions")
    with op.batch_alter_table("iam_instance_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_instance_profiles_account_id"))

    op.drop_table("iam_instance_profiles")
    with op.batch_alter_table("iam_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_group_members_user_id"))

    op.drop_table("iam_group_members")
    with op.batch_alter_table("iam_access_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_access_keys_user_id"))
        batch_op.drop_index(batch_op.f("ix_iam_access_keys_account_id"))

    op.drop_table("iam_access_keys")
    with op.batch_alter_table("iam_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_users_account_id"))

    op.drop_table("iam_users")
    with op.batch_alter_table("iam_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_iam_sessions_account_id"))

    op.drop_table("iam_sessions")
    with op.batch_alter_table("iam_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_roles_account_id"))

    op.drop_table("iam_roles")
    with op.batch_alter_table("iam_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_policies_account_id"))

    op.drop_table("iam_policies")
    with op.batch_alter_table("iam_inline_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_inline_policies_account_id"))

    op.drop_table("iam_inline_policies")
    with op.batch_alter_table("iam_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_groups_account_id"))

    op.drop_table("iam_groups")
    with op.batch_alter_table("iam_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iam_attachments_policy_arn"))
        batch_op.drop_index(batch_op.f("ix_iam_attachments_account_id"))

    op.drop_table("iam_attachments")
    op.drop_table("iam_account_aliases")
