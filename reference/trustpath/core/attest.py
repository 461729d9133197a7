"""Creating a record: the signer's side of the protocol (XEP: The path Element, Signing Input)."""

from __future__ import annotations

from datetime import datetime

from . import constants
from .errors import UsageError
from .keys import SigningKey
from .model import Record, Chain, KeySource, MessageFields, View
from .signing import signing_input
from .timefmt import epoch


def covered_payloads(message: MessageFields) -> tuple[str, ...] | None:
    """What a signer lists in ``h=``: None (the default payloads) unless the message carries one
    outside them, then every payload it carries."""
    if not message.elements:  # body, subject, thread, require and report are all default payloads
        return None
    present = message.present
    if all(token in constants.DEFAULT_PAYLOADS for token in present):
        return None
    return present


def attest(message: MessageFields, key: SigningKey, *, out_view: View, previous: str = "",
           signer: str | None = None, time: datetime | int | None = None, in_view: View | None = None,
           in_peer: str | None = None, out_peer: str | None = None, chain: Chain | None = None,
           chain_reason: str | None = None, vouch: KeySource | None = None, removed: int | None = None,
           stored: datetime | int | None = None, alg: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> Record:
    """Sign one record for ``message``.

    ``previous`` is the text of the records already in the path, joined by one space ("" for the
    first).  ``signer`` is None for the sending client (its JID is the message's 'from'); a server
    gives its domain, ``time``, its ``in_view`` and what it found (``chain``, ``vouch``, ``removed``),
    except on a refusal it sends, which nothing brought to it (XEP: Requiring Verified Hops).
    ``extra`` are fields a later version defines, written before the signature and signed.
    """
    text = sign_record(message, key, out_view=out_view, previous=previous, signer=signer, time=time, in_view=in_view,
                       in_peer=in_peer, out_peer=out_peer, chain=chain, chain_reason=chain_reason, vouch=vouch,
                       removed=removed, stored=stored, alg=alg, extra=extra)
    return Record(
        key=key.public, out_view=out_view, sig=text[text.rindex(";z=") + 3:], text=text, signer=signer,
        time=epoch(time) if time is not None else None, in_view=in_view, in_peer=in_peer, out_peer=out_peer,
        chain=chain, chain_reason=chain_reason, vouch=vouch, removed=removed or None,
        stored=epoch(stored) if stored is not None else None, covers=covered_payloads(message), alg=alg,
        extra=tuple(extra))


def sign_record(message: MessageFields, key: SigningKey, *, out_view: View, previous: str = "",
                signer: str | None = None, time: datetime | int | None = None, in_view: View | None = None,
                in_peer: str | None = None, out_peer: str | None = None, chain: Chain | None = None,
                chain_reason: str | None = None, vouch: KeySource | None = None, removed: int | None = None,
                stored: datetime | int | None = None, alg: str | None = None,
                extra: tuple[tuple[str, str], ...] = ()) -> str:
    """The text of the record :func:`attest` makes: what a server appends to the path, without
    the value object it has no use for."""
    if not message.id:
        raise UsageError("a message with neither an 'id' nor an <origin-id/> cannot be attested (XEP: no-id)")
    if signer is not None and time is None:
        raise UsageError("a server's record states when it was signed (time)")
    if signer is not None and (in_view is None) != (chain is None):
        raise UsageError("a server's record states its in-view and what arrived (chain), or neither (a refusal's "
                         "first record)")
    if signer is not None and in_view is None and (vouch is not None or removed or stored is not None):
        raise UsageError("a refusal's first record (no in-view) vouches for nothing, removes nothing, stores nothing")
    if signer is None and (in_view is not None or chain is not None or vouch is not None):
        raise UsageError("the sending client's record has an out-view only")
    if (chain is Chain.FAIL) != (chain_reason is not None):
        raise UsageError("chain 'fail' and only it takes a chain_reason")
    if stored is not None and (signer is None or out_peer is None):
        # rule 28: 'st' is the delivering server's; every verifier refuses it on any other record
        raise UsageError("only a server's record that delivers to a client (out_peer) states 'stored'")
    covers = covered_payloads(message)
    fields: list[tuple[str, str]] = []
    if signer is not None:
        fields.append(("s", signer))
    seconds = epoch(time) if time is not None else None
    if seconds is not None:
        fields.append(("t", str(seconds)))
    if alg is not None:
        if alg not in constants.TABLE["algorithms"]:
            raise UsageError(f"algorithm {alg!r} is not one this version signs with: {constants.TABLE['algorithms']}")
        fields.append(("a", alg))
    fields.append(("k", key.public))
    if in_view is not None:
        fields.append(("i", in_view.text()))
    if in_peer is not None:
        fields.append(("f", in_peer))
    if chain is not None:
        fields.append(("c", chain.value if chain_reason is None else f"{chain.value}.{chain_reason}"))
    if vouch is not None:
        fields.append(("v", vouch.value))
    if removed:
        fields.append(("r", str(removed)))
    fields.append(("o", out_view.text()))
    if out_peer is not None:
        fields.append(("p", out_peer))
    if stored is not None:
        fields.append(("st", str(epoch(stored))))
    if covers is not None:
        fields.append(("h", ",".join(covers)))
    if extra:
        known = {name for name, _ in fields} | set(constants.RECORD_FIELDS)
        for name, value in extra:
            if name in known:
                raise UsageError(f"extra field {name!r} is a field this version defines")
            fields.append((name, value))
    unsigned = ";".join([f"{name}={value}" for name, value in fields])
    return f"{unsigned};z={key.sign(signing_input(message, previous, unsigned, covers))}"
