"""What may name a recognizer: the name is a folder under the artifacts and a value of the API's `model`."""

from __future__ import annotations

import re

from fashion_search.echo import value_echoed

# `model=fashion` asks the API for every attribute recognizer at once (recognition.services.FASHION).
RESERVED_NAMES = frozenset({"fashion"})
NAME_MAX_LENGTH = 50  # RecognizerVersion.name's
_NAME = re.compile(r"[-a-zA-Z0-9_]+")  # a slug, as RecognizerVersion.name: no "/" nor "..", so no other folder


def recognizer_name_refusal(name: str) -> str | None:
    """Why `name` cannot name a recognizer, or None when it can."""
    if not _NAME.fullmatch(name):
        return (
            f"“{value_echoed(name)}” cannot name a recognizer: use letters, digits, hyphens and underscores only "
            "(the name is a folder)."
        )
    if len(name) > NAME_MAX_LENGTH:
        return f"A recognizer name may be at most {NAME_MAX_LENGTH} characters long."
    if name in RESERVED_NAMES:
        return f"“{name}” is reserved: the API's model={name} means every attribute."
    return None
