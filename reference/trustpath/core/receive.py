"""The recipient's whole check of one received stanza: bytes in, report out (XEP: At the
Recipient Client, steps 1 and 2, then :func:`trustpath.core.verify.verify`)."""

from __future__ import annotations

from collections.abc import Container
from typing import Any
from dataclasses import replace
from datetime import datetime

from .codec import NS_MUC_USER, decode_path, find_message, message_fields, parse_stanza
from .errors import ForgedWrapper, MalformedStanza
from .model import DEFAULT_MAX_SKEW, NS, bare
from .timefmt import parse_stamp
from .verify import Anchor, Report, verify

WRAPPER_NOTES = {"carbon-sent": "a carbon copy of a message sent from another device",
                 "carbon-received": "a carbon copy of a message received on another device"}


def verify_stanza(data: bytes, anchor: Anchor, now: datetime, *, max_skew: int = DEFAULT_MAX_SKEW,
                  seen: Container[str] = ()) -> Report:
    """Parse ``data`` (a message, or a carbon or archive result carrying one) and verify its path.

    Raises :class:`~trustpath.core.errors.InvalidInput` (a subclass of it) for input that is
    not an acceptable stanza; every other finding is in the report.
    """
    received = find_message(parse_stanza(data))
    message = received.message
    own = bare(anchor.me)
    via_room = message.find(f"{{{NS_MUC_USER}}}x") is not None
    if received.wrapper is not None and received.outer_from not in (own, *((None,) if received.wrapper == "archive"
                                                                          else ())):
        if received.wrapper == "archive" and message.get("type") == "groupchat":
            via_room = True  # a room's own archive (XEP-0313 on a MUC): rooms do not take part
        else:
            # XEP-0280 and XEP-0313: only the account itself may hand a forwarded message to its
            # own client; anyone else could wrap a stanza it once saw around its own words.
            raise ForgedWrapper(f"a {received.wrapper.replace('-', ' ')} wrapper from "
                                f"{received.outer_from or 'nobody'}; only {own} may send one to {anchor.me}")
    path = decode_path(message)
    extra = tuple({token for a in (path.records if path else ()) for token in (a.covers or ())
                   if token.startswith("{")})
    archived_at = None
    if received.wrapper == "archive":
        archived_at = parse_stamp(received.delay) if received.delay else now
    report = verify(message_fields(message, extra), path, anchor, now, max_skew=max_skew, seen=seen,
                    archived_at=archived_at, wrapper=received.wrapper, via_room=via_room)
    if received.wrapper is None:
        return report
    where = WRAPPER_NOTES.get(received.wrapper) or \
        f"read from the archive (archived {received.delay or 'at an unknown time'})"
    return replace(report, notes=report.notes + (where,))


def refusal_error(message_element: Any) -> Any | None:
    """The ``<error/>`` of a refusal (XEP: Covered Payloads, token ``refusal``): the child in the
    message's own namespace that holds ``<unverified-hop/>``, the one whose payload the records
    cover (:func:`~trustpath.core.codec.message_fields`), or None.  Works on lxml and on
    ElementTree elements (the slixmpp plugin's)."""
    tag = message_element.tag
    error_tag = f"{tag[:tag.index('}') + 1]}error" if tag.startswith("{") else "error"
    for error in message_element:
        if error.tag == error_tag and error.find(f"{{{NS}}}unverified-hop") is not None:
            return error
    return None


def refuser_of(message_element: Any) -> str | None:
    """The 'by' of a refusal: the server that says it refused the message (XEP: Requiring Verified
    Hops), or None when no ``<error/>`` names a hop, or it names no server."""
    error = refusal_error(message_element)
    return (error.get("by") or None) if error is not None else None


def verify_refusal_stanza(data: bytes, anchor: Anchor, now: datetime, *, max_skew: int = DEFAULT_MAX_SKEW,
                          seen: Container[str] = ()) -> Report:
    """Parse ``data`` (an error naming the hop that refused a message, ``<unverified-hop/>``) and
    verify its path from the refusing server (its 'by') to this client.

    Raises :class:`~trustpath.core.errors.InvalidInput` (a subclass of it) for input that is not
    a refusal this client could check: forwarded, malformed, or without 'by'."""
    received = find_message(parse_stanza(data))
    if received.wrapper is not None:
        raise MalformedStanza("a refusal comes to the sender itself, never forwarded in a carbon or an archive")
    message = received.message
    by = refuser_of(message)
    if by is None:
        raise MalformedStanza("not a refusal: the error names no hop (<unverified-hop/>) or no refusing server ('by')")
    return verify(message_fields(message), decode_path(message), anchor, now, max_skew=max_skew, seen=seen,
                  refused_by=by)
