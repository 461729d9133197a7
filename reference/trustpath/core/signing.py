"""The exact bytes a record signs (XEP section "Signing Input").

Not XML canonicalization: a NUL-separated list of (name, value) fields taken from the message,
the records before this one as received, and this record's own text as written.  The signature
survives the stanza's namespace changing from ``jabber:client`` to ``jabber:server`` and servers
adding elements such as ``<stanza-id/>`` or ``<delay/>``.  XML 1.0 text cannot contain U+0000, so
NUL separators make the encoding unambiguous.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import constants
from .model import NS, MessageFields

_NUL = "\x00"
_TEXT = {"body": "bodies", "subject": "subjects", "thread": "threads"}


def message_prefix(message: MessageFields) -> str:
    """The addressing part of the signing input; the same for every record of a message."""
    return _NUL.join((NS, "from", message.sender, "to", message.to, "id", message.id, "type", message.type, ""))


def payload_input(message: MessageFields, tokens: Iterable[str]) -> str:
    """The covered payloads (XEP: Covered Payloads), in the order a record's ``h=`` lists them.
    A listed payload the message does not carry adds nothing: covering it covers its absence."""
    parts: list[str] = []
    elements = dict(message.elements)
    for token in tokens:
        group = _TEXT.get(token)
        if group is not None:
            for lang, text in getattr(message, group):
                parts += [token if lang is None else f"{token}@{lang}", _NUL, text, _NUL]
        elif token == "require":
            if message.require is not None:
                parts += ["require", _NUL, message.require, _NUL]
        elif token == "report":
            if message.report is not None:
                own, *hops = message.report
                parts += ["report", _NUL]  # so that an empty <report/> is not signed like no report
                for name, value in own:
                    parts += ["report.", name, _NUL, value, _NUL]
                for position, attributes in enumerate(hops, 1):
                    parts += ["hop", _NUL, str(position), _NUL]
                    for name, value in attributes:
                        parts += ["hop.", name, _NUL, value, _NUL]
        elif token in elements:
            parts += [token, _NUL, elements[token]]
    return "".join(parts)


def signing_input(message: MessageFields, previous: str, unsigned: str, covers: Iterable[str] | None = None, *,
                  prefix: str | None = None, payload: str | None = None) -> bytes:
    """The bytes a record signs: the message (``covers``: its payload tokens, None for the
    default ones), ``previous`` (the records before it, joined by one space; "" for the first)
    and ``unsigned`` (the record's own text up to, not including, ``;z=``).  ``prefix`` and
    ``payload`` may carry a precomputed :func:`message_prefix` and :func:`payload_input` (for
    these ``covers``): a verifier checks several records of one message."""
    if payload is None:
        payload = payload_input(message, constants.DEFAULT_PAYLOADS if covers is None else covers)
    return "".join((message_prefix(message) if prefix is None else prefix, payload,
                    "prev", _NUL, previous, _NUL, "rec", _NUL, unsigned, _NUL)).encode("utf-8")
