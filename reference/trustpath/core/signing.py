"""The exact bytes an attestation signs (XEP section "Signing Input").

Not XML canonicalization: a NUL-separated list of (name, value) fields taken from
the message and the attestation, so that the signature survives the stanza's
namespace changing from ``jabber:client`` to ``jabber:server`` and servers adding
elements such as ``<stanza-id/>`` or ``<delay/>``.  XML 1.0 text cannot contain
U+0000, so NUL separators make the encoding unambiguous.
"""

from __future__ import annotations

from .model import NS, Attestation, MessageFields, View

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
    if message.report is not None:
        own, *hops = message.report
        for name, value in own:
            parts += ["report.", name, _NUL, value, _NUL]
        for position, attributes in enumerate(hops, 1):
            parts += ["hop", _NUL, str(position), _NUL]
            for name, value in attributes:
                parts += ["hop.", name, _NUL, value, _NUL]
    return "".join(parts)


def _view_fields(parts: list[str], element: str, view: View) -> None:
    # attribute names in code point order, as the XEP requires
    for name, value in (("cb", view.cb), ("chain", view.chain), ("chain-reason", view.chain_reason),
                        ("cipher", view.cipher), ("key-source", view.key_source), ("method", view.method),
                        ("peer", view.peer), ("reason", view.reason),
                        ("removed", None if view.removed is None else str(view.removed)),
                        ("result", view.result), ("side", view.side), ("spki", view.spki), ("tls", view.tls)):
        if value is not None:
            parts += [element, name, _NUL, value, _NUL]


def signing_input(message: MessageFields, prev_sig: str, attestation: Attestation,
                  *, prefix: str | None = None) -> bytes:
    """Return the bytes ``attestation`` signs, given the message and the previous signature.

    ``prev_sig`` is the ``sig`` of the attestation before this one in the path, or
    ``""`` for the first.  ``prefix`` may carry a precomputed :func:`message_prefix`.
    """
    a = attestation
    return fields_input(message_prefix(message) if prefix is None else prefix, prev_sig, alg=a.alg,
                        for_id=a.for_id, prev_key=a.prev_key, signer=a.signer, stored=a.stored, time=a.time,
                        in_view=a.in_view, out_view=a.out_view)


def fields_input(prefix: str, prev_sig: str, *, alg: str | None, for_id: str, prev_key: str | None, signer: str,
                 stored: str | None, time: str, in_view: View | None, out_view: View | None) -> bytes:
    """:func:`signing_input` from the attestation's fields, before the attestation exists."""
    parts = [prefix, "prev", _NUL, prev_sig, _NUL]
    for name, value in (("alg", alg), ("for", for_id), ("prev-key", prev_key), ("signer", signer),
                        ("stored", stored), ("time", time)):
        if value is not None:
            parts += ["attestation.", name, _NUL, value, _NUL]
    if in_view is not None:
        _view_fields(parts, "in.", in_view)
    if out_view is not None:
        _view_fields(parts, "out.", out_view)
    return "".join(parts).encode("utf-8")
