"""EC2's encoded authorization messages: what is sealed opens again, nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest

from karri.api.auth import messages


def test_a_message_decodes_to_what_was_encoded() -> None:
    content = {"allowed": False, "context": {"action": "ec2:RunInstances"}}
    assert messages.decode(messages.encode(content)) == content


def test_an_altered_or_foreign_message_is_refused() -> None:
    text = messages.encode({"allowed": False})
    with pytest.raises(messages.InvalidMessage):
        messages.decode(text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB"))
    with pytest.raises(messages.InvalidMessage):
        messages.decode("not a message ☃")


def test_another_clouds_key_cannot_open_it(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    messages.use_key_file(tmp_path / "a")
    text = messages.encode({"allowed": False})
    messages.use_key_file(tmp_path / "b")
    with pytest.raises(messages.InvalidMessage):
        messages.decode(text)
    messages.use_key_file(tmp_path / "a")  # the same key again: kept in the data dir
    assert messages.decode(text) == {"allowed": False}
