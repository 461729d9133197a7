"""Creating an attestation: the signer's side of the protocol."""

from __future__ import annotations

from datetime import datetime

from .errors import UsageError
from .keys import SigningKey
from .model import Attestation, MessageFields, View
from .signing import fields_input, message_prefix
from .timefmt import format_time


def attest(message: MessageFields, key: SigningKey, *, signer: str, time: datetime | str,
           previous: Attestation | None = None, prev_key: str | None = None,
           in_view: View | None = None, out_view: View | None = None,
           stored: datetime | str | None = None) -> Attestation:
    """Sign one attestation for ``message``.

    ``previous`` is the last attestation already in the message's path (``None`` when
    this one is the first); ``prev_key`` is its signer's key as this signer checked it,
    or ``None`` when that signer is not this one's direct peer and so cannot be vouched for.
    Times are timezone-aware datetimes or wire-format strings.
    """
    if not message.id:
        raise UsageError("a message without an 'id' cannot be attested (XEP business rules)")
    if in_view is None and out_view is None:
        raise UsageError("an attestation describes at least one hop (in_view or out_view)")
    if previous is None and prev_key is not None:
        raise UsageError("prev_key vouches for a previous attestation, but none was given")
    if in_view is not None and in_view.chain is None:
        raise UsageError("an in_view must state chain (pass, absent, stripped or fail)")
    when = time if isinstance(time, str) else format_time(time)
    stored_at = stored if stored is None or isinstance(stored, str) else format_time(stored)
    data = fields_input(message_prefix(message),
                        previous.sig if previous is not None else "", alg=None, for_id=message.id,
                        prev_key=prev_key, signer=signer, stored=stored_at, time=when, in_view=in_view,
                        out_view=out_view)
    return Attestation(signer=signer, time=when, for_id=message.id, sig=key.sign(data), in_view=in_view,
                       out_view=out_view, prev_key=prev_key, stored=stored_at)
