"""What may be sent in an HTTP header: the rules of RFC 9110 (field names and values) and
RFC 7617 (basic credentials), for the values an operator configures on a stream.

Every check returns the reason a value is refused, or ``None``; a reason never quotes the
value, because the values checked here are secrets (tokens, passwords, header values).

A field value is visible ASCII with inner spaces or tabs: RFC 9110 also tolerates
``obs-text`` (bytes 0x80-0xFF), but a Python string holds characters, not bytes, and
receivers disagree on how to decode such bytes, so non-ASCII is refused too. A CR or LF
would end the header early and let a value smuggle in headers of its own.
"""

from __future__ import annotations

import re
from typing import Final

#: RFC 9110 ``token`` (a field name): one or more ``tchar``.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: RFC 9110 ``field-value`` restricted to ASCII: visible characters with single spaces or
#: tabs between them, none at either end.
_FIELD_VALUE: Final = re.compile(r"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*")
#: RFC 5234 ``CTL``: the control characters (and DEL).
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
#: The control characters a field value may not hold anywhere (a tab is allowed inside).
_CONTROL_BUT_TAB: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _describe(value: str) -> str:
    """Name the first kind of forbidden character in ``value`` (without quoting it)."""
    if "\r" in value or "\n" in value:
        return "a line break (CR or LF)"
    if _CONTROL_BUT_TAB.search(value):
        return "a control character"
    if not value.isascii():
        return "a non-ASCII character"
    if value != value.strip(" \t"):
        return "a leading or trailing space"
    if "\t" in value:
        return "a tab"
    return "a character HTTP does not allow there"


def field_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an HTTP header name, or ``None`` when it can."""
    if _TOKEN.fullmatch(name):
        return None
    return f"not a valid HTTP header name: it contains {_describe(name)}"


def field_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as an HTTP header value, or ``None`` when it can."""
    if _FIELD_VALUE.fullmatch(value):
        return None
    return f"cannot be sent in an HTTP header: it contains {_describe(value)}"


def basic_username_problem(username: str) -> str | None:
    """Why ``username`` cannot be a basic-authorization user id (RFC 7617: no colon, no
    control character), or ``None`` when it can."""
    if ":" in username:
        return "a basic-authorization username cannot contain ':'"
    return basic_password_problem(username)


def basic_password_problem(password: str) -> str | None:
    """Why ``password`` cannot be sent with basic authorization (RFC 7617: no control
    character), or ``None`` when it can."""
    if _CONTROL.search(password):
        return f"basic credentials cannot contain {_describe(password)}"
    return None
