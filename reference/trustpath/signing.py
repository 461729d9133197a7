"""The exact bytes an attestation signs (XEP section "Signing Input").

Not XML canonicalization: a NUL-separated list of (name, value) fields taken from
the message and the attestation, so that the signature survives the stanza's
namespace changing from ``jabber:client`` to ``jabber:server`` and servers adding
elements such as ``<stanza-id/>`` or ``<delay/>``.  XML 1.0 text cannot contain
U+0000, so NUL separators make the encoding unambiguous.
"""

from __future__ import annotations

from .model import NS, Attestation, MessageFields

_NUL = "\x00"


def message_prefix(message: MessageFields) -> str:
    """The message part of the signing input; the same for every attestation of a message."""
    parts = [NS, _NUL, "from", _NUL, message.sender, _NUL, "to", _NUL, message.to, _NUL,
             "type", _NUL, message.type, _NUL]
    for name, values in (("body", message.bodies), ("subject", message.subjects),
                         ("thread", message.threads)):
        for lang, text in values:
            parts += [name if lang is None else f"{name}@{lang}", _NUL, text, _NUL]
    if message.require is not None:
        parts += ["require", _NUL, message.require, _NUL]
    return "".join(parts)


def signing_input(message: MessageFields, prev_sig: str, attestation: Attestation,
                  *, prefix: str | None = None) -> bytes:
    """Return the bytes ``attestation`` signs, given the message and the previous signature.

    ``prev_sig`` is the ``sig`` of the attestation before this one in the path, or
    ``""`` for the first.  ``prefix`` may carry a precomputed :func:`message_prefix`.
    """
    parts = [message_prefix(message) if prefix is None else prefix, "prev", _NUL, prev_sig, _NUL]
    for element, attrs in (("attestation", attestation.attributes(with_sig=False)),
                           ("in", attestation.in_view.attributes() if attestation.in_view else None),
                           ("out", attestation.out_view.attributes() if attestation.out_view else None)):
        if attrs is None:
            continue
        for name in sorted(attrs):
            parts += [element, ".", name, _NUL, attrs[name], _NUL]
    return "".join(parts).encode("utf-8")
