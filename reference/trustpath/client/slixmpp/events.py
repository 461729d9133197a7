"""What the ``trust_path`` plugin tells the application: one named tuple per event.

Each is emitted with ``xmpp.event(name, payload)`` and unpacks like a tuple
(``stanza, report = event``).  ``trust_path_ready`` carries a
:class:`~trustpath.client.slixmpp.policy.ServerPolicy` instead.
"""

from __future__ import annotations

from typing import NamedTuple

from slixmpp.stanza import Message

from ...core.delivery import Delivery
from ...core.errors import InvalidInput
from ...core.verify import Report


class TrustPathVerdict(NamedTuple):
    """``trust_path_verdict``: the message (as slixmpp delivered it) and its report."""

    stanza: Message
    report: Report


class DeliveryVerdict(NamedTuple):
    """``trust_path_delivery``: a delivery receipt (``stanza``) carried the recipient's report on a
    message this account sent (``delivery.reported.for_id``), and what may be shown for it."""

    stanza: Message
    delivery: Delivery


class InvalidPath(NamedTuple):
    """``trust_path_invalid``: a message whose path, or delivery report, could not be read (no
    report); ``error`` says why."""

    stanza: Message
    error: InvalidInput


class PinMismatch(NamedTuple):
    """``trust_path_pin_mismatch``: ``domain`` presented ``spki``, which matches none of its pins
    (``plugin.pin_store.pins(domain)``).  The connection is already closed."""

    domain: str
    spki: str


class RequireRefused(NamedTuple):
    """``trust_path_require_refused``: a message was not sent, because this client's own hop
    cannot meet its ``<require/>`` (XEP rule 34)."""

    stanza: Message
    verdict: str
    reason: str


class UnverifiedHop(NamedTuple):
    """``trust_path_unverified_hop``: a server refused a message and named the hop
    (``<unverified-hop/>`` attributes: peer, method, reason, required); ``report`` is the check of
    the refusal's own path, from the server that refused."""

    stanza: Message
    condition: str
    hop: dict[str, str]
    report: Report | None = None
