"""Labels of runs and sweeps, given at submission: a name and free key/value tags; the ``name`` and ``tag``
filters of their lists (GET /v1/runs, GET /v1/sweeps)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from models.tables import NAME_LENGTH, TAG_KEY_LENGTH, TAG_VALUE_LENGTH
from service.errors import field_error


def check_text(text: str) -> str:
    """Text stored or searched for as it is: no NUL character (PostgreSQL cannot hold one in a string), no lone
    surrogate (JSON's "\\ud800": not Unicode text, which no database stores)."""
    if "\x00" in text:
        raise PydanticCustomError("value_error", "must not contain the NUL character (\\x00)")
    if not is_unicode(text):
        raise PydanticCustomError("value_error", LONE_SURROGATE)
    return text


#: why a string with a lone surrogate is refused
LONE_SURROGATE = "must be Unicode text: a lone surrogate (such as \\ud800) is not"


def is_unicode(text: str) -> bool:
    """True unless the string holds a lone surrogate (JSON can write one; UTF-8 cannot)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


#: a string that reaches the database as it is (a label, or a filter on one)
Text = Annotated[str, AfterValidator(check_text)]
#: the name of a run or a sweep
Name = Annotated[Text, Field(min_length=1, max_length=NAME_LENGTH)]


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Keys of 1 to TAG_KEY_LENGTH characters without '=', values of at most TAG_VALUE_LENGTH characters, no
    NUL in either (the error reads plainly, without pydantic's "Value error, " prefix, wherever it is
    reported)."""
    for key, value in tags.items():
        reason = None
        if "\x00" in key or "\x00" in value:
            reason = f"tag {key!r}: key and value must not contain the NUL character (\\x00)"
        elif not (is_unicode(key) and is_unicode(value)):
            reason = f"tag {key!r}: key and value {LONE_SURROGATE}"
        elif not key or len(key) > TAG_KEY_LENGTH or "=" in key:
            reason = f"tag key {key!r}: 1 to {TAG_KEY_LENGTH} characters, without '='"
        elif len(value) > TAG_VALUE_LENGTH:
            reason = f"tag {key}: the value is longer than {TAG_VALUE_LENGTH} characters"
        if reason is not None:
            raise PydanticCustomError("value_error", "{reason}", {"reason": reason})
    return tags


#: free key/value labels of a submission
Tags = Annotated[
    dict[str, str],
    AfterValidator(check_tags),
    Field(description=f"free key/value labels (keys without '=', up to {TAG_KEY_LENGTH} characters; values up "
          f"to {TAG_VALUE_LENGTH})"),
]


def name_filter(noun: str) -> Any:
    """The ``name`` filter of a list of ``noun`` (runs, sweeps)."""
    return Field(None, description=f"only {noun} with this name")


def tag_filter(noun: str) -> Any:
    """The ``tag`` filter of a list of ``noun`` (repeatable)."""
    return Field(
        None,
        description=f"key=value: {noun} with this tag; key alone: {noun} with this tag key (repeatable, all must hold)",
    )


def parse_tag_filters(values: list[str] | None) -> tuple[dict[str, str | None], list[dict[str, Any]]]:
    """``tag`` filters as key -> value (None: has the key), and the errors (loc, field, msg, type) of those that
    are neither key=value nor key."""
    tags: dict[str, str | None] = {}
    errors: list[dict[str, Any]] = []
    for t in values or []:
        key, sep, value = t.partition("=")
        if not key:
            errors.append(field_error(["query", "tag"], "tag", f"{t!r}: expected key=value or key"))
        tags[key] = value if sep else None
    return tags, errors
