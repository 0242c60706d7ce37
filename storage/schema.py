"""Table definitions shared by SQLite and PostgreSQL (SQLAlchemy Core)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

edits = sa.Table(
    "edits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(128), nullable=False, unique=True),
    sa.Column("chat_id", sa.BigInteger, nullable=False),
    sa.Column("chat_type", sa.String(16), nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("message_id", sa.BigInteger, nullable=False),
    sa.Column("status_message_id", sa.BigInteger, nullable=True),
    sa.Column("lang", sa.String(8), nullable=False, server_default="en"),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("blob_keys", sa.JSON, nullable=True),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("task_id", sa.String(128), nullable=True),
    sa.Column("callback_token", sa.String(64), nullable=False),
    sa.Column("result_urls", sa.JSON, nullable=True),
    sa.Column("result_file_ids", sa.JSON, nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_detail", sa.Text, nullable=True),
    sa.Column("credits", sa.Float, nullable=True),
    sa.Column("poll_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_check_at", sa.Float, nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("submitted_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("notified_at", sa.Float, nullable=True),
    # Group moderation (0004): the requester's name, the approval request message and the
    # decision about it, and who removed the result (for /modlog).
    sa.Column("user_name", sa.String(128), nullable=True),
    sa.Column("approval_message_id", sa.BigInteger, nullable=True),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("decided_by", sa.BigInteger, nullable=True),
    sa.Column("decided_by_name", sa.String(128), nullable=True),
    sa.Column("decided_at", sa.Float, nullable=True),
    sa.Column("removed_by_name", sa.String(128), nullable=True),
    sa.Column("removed_at", sa.Float, nullable=True),
    # Spending limits (0005): the expected credits, counted until the real figure is known.
    sa.Column("cost_estimate", sa.Float, nullable=True),
    # Forum topics (0009): the topic (message_thread_id) the request came from.
    sa.Column("thread_id", sa.BigInteger, nullable=True),
    # Status message (0011): when it was last rewritten and what it says (`Progress.key`).
    sa.Column("status_edited_at", sa.Float, nullable=True),
    sa.Column("status_shown", sa.String(64), nullable=True),
    sa.UniqueConstraint("provider", "task_id", name="uq_edits_provider_task"),
    sa.Index("ix_edits_state_next_check", "state", "next_check_at"),
    sa.Index("ix_edits_user_created", "user_id", "created_at"),
    sa.Index("ix_edits_chat_created", "chat_id", "created_at"),
    sa.Index("ix_edits_chat_user_created", "chat_id", "user_id", "created_at"),
    sa.Index("ix_edits_user_state", "user_id", "state"),
    sa.Index("ix_edits_created", "created_at"),
)

pending_prompts = sa.Table(
    "pending_prompts",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sa.Column("message_id", sa.BigInteger, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

blocked_chats = sa.Table(
    "blocked_chats",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Albums (media groups) arrive as one message per photo; they are buffered here until the
# group is complete, then exactly one worker claims the group and turns it into one edit.
albums = sa.Table(
    "albums",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True),
    sa.Column("media_group_id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("last_item_at", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

album_items = sa.Table(
    "album_items",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True),
    sa.Column("message_id", sa.BigInteger, primary_key=True),
    sa.Column("media_group_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("chat_type", sa.String(16), nullable=False),
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("caption", sa.Text, nullable=True),
    sa.Column("photo", sa.JSON, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("thread_id", sa.BigInteger, nullable=True),  # 0011: its forum topic
    sa.Index("ix_album_items_group", "chat_id", "media_group_id"),
)

# Settings per chat (JSON, see storage/chat_settings.py): a private chat's belong to its user
# (chat id == user id, which also carries the user's language override), a group's apply to
# every edit in the group. `version` makes concurrent changes safe (compare-and-set).
chat_settings = sa.Table(
    "chat_settings",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_by", sa.BigInteger, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# A setting the bot asked for as free text (ForceReply): the user's next text is its value.
setting_inputs = sa.Table(
    "setting_inputs",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("prompt_message_id", sa.BigInteger, nullable=False),
    sa.Column("menu_message_id", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_setting_inputs_prompt", "chat_id", "prompt_message_id"),
)

# Operators' runtime control of users (0006, storage/user_controls.py): a bot-wide ban, the
# runtime allowlist (adds to ALLOWED_USER_IDS) and one user's own limits (None: the
# deployment's). One row per user an operator ever touched.
user_controls = sa.Table(
    "user_controls",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sa.Column("banned", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("allowed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("max_in_flight", sa.Integer, nullable=True),
    sa.Column("daily_edits", sa.Integer, nullable=True),
    sa.Column("daily_credits", sa.Float, nullable=True),
    sa.Column("updated_by", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Every change an operator made (who, what, when), for /oplog.
operator_log = sa.Table(
    "operator_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("operator_id", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=True),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
)

# Repeated actions counted for throttling (storage/throttle.py), e.g. "As file" presses.
action_marks = sa.Table(
    "action_marks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("subject", sa.BigInteger, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_action_marks_user", "action", "user_id", "at"),
    sa.Index("ix_action_marks_subject", "action", "subject", "at"),
)

# Operator incidents shared by every replica (storage/alerts.py): open while it lasts, so
# operators hear about it once however many replicas notice it.
operator_alerts = sa.Table(
    "operator_alerts",
    metadata,
    sa.Column("code", sa.String(96), primary_key=True),
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("changed_at", sa.Float, nullable=False),
)

# Spending limits (0005): one row per operator alert already sent (e.g. "80% of today's
# cap"), so that every replica together sends each alert once.
spend_alerts = sa.Table(
    "spend_alerts",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Telegram updates (0007), recorded before Telegram hears they arrived (webhook answer, polling
# offset) and marked done once handled; see storage/updates.py. `lease_until` 0: nobody is
# handling it. Done rows keep only their id (payload emptied) until they are pruned.
updates = sa.Table(
    "updates",
    metadata,
    sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("payload", sa.Text, nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("done_at", sa.Float, nullable=True),
    sa.Index("ix_updates_pending", "done_at", "lease_until"),
)

# Result messages (0008): every message the bot posted carrying an edit's result (delivery,
# /history, "As file"), so that a button under one acts only on what it was made for: see
# storage/result_messages.py.
result_messages = sa.Table(
    "result_messages",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True),
    sa.Column("message_id", sa.BigInteger, primary_key=True),
    sa.Column("edit_id", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_result_messages_edit", "edit_id", "chat_id"),
)

# Paid edits (storage/balances.py): each user's balance in edits, and the ledger of every
# change to it; a balance is always the sum of its ledger's `amount`s. One entry per edit and
# kind (the reservation, its return) and per Telegram charge and kind (the purchase, its
# refund): a repeated step finds its entry and changes nothing.
balances = sa.Table(
    "balances",
    metadata,
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sa.Column("balance", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.CheckConstraint("balance >= 0", name="ck_balances_not_negative"),
)
balance_ledger = sa.Table(
    "balance_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount", sa.Integer, nullable=False),
    sa.Column("free", sa.Integer, nullable=False, server_default="0"),
    sa.Column("edit_id", sa.Integer, nullable=True),
    sa.Column("charge_id", sa.String(255), nullable=True),
    sa.Column("stars", sa.Integer, nullable=True),
    sa.Column("actor_id", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("kind", "edit_id", name="uq_balance_ledger_edit"),
    sa.UniqueConstraint("kind", "charge_id", name="uq_balance_ledger_charge"),
    sa.Index("ix_balance_ledger_user", "user_id", "created_at"),
    sa.Index("ix_balance_ledger_kind", "kind", "created_at"),
)

# Provider turns (0012): one row per new task sent to a provider account, kept for the
# account's rate-limit window. Every replica counts them (the limit holds for all together)
# and orders its queue by them (who was served lately waits behind who was not): see
# storage/turns.py.
provider_turns = sa.Table(
    "provider_turns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(32), nullable=False),
    sa.Column("requester", sa.BigInteger, nullable=False),
    sa.Column("edit_id", sa.Integer, nullable=False),
    sa.Column("taken_at", sa.Float, nullable=False),
    sa.Index("ix_provider_turns_account_taken", "account", "taken_at"),
)
