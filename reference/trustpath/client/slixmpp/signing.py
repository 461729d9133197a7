"""Sending: in the last outgoing filter (``out_sce``) every message with a body, a subject, a
covered element payload (OMEMO, OOB, ...; XEP: Covered Payloads) or a receipt gets one record by
this client (:func:`trustpath.core.attest.attest`: its session key, its view of H1, and ``h=``
listing the payloads present), and
``<require/>`` when asked; a requirement this client's own hop cannot meet is refused there
(XEP rule 34), and a receipt waits for the report of the message it acknowledges.

The signing input names the message by its 'id', else its XEP-0359 origin-id; a message with
neither cannot be attested.  Every attested message gets an ``<origin-id/>`` (the 'id' when it
has one), so that it keeps an identity where a server or a room rewrites the 'id'."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slixmpp import BaseXMPP
from slixmpp.stanza import Message
from slixmpp.xmlstream import ET

from ...core import constants
from ...core.attest import attest
from ...core.codec import NS_SID, add_record, find_path_element, message_fields, parse_stanza, remove_paths, \
    serialize
from ...core.errors import InvalidInput, TrustPathError
from ...core.model import NS
from ...core.require import requirement_problem
from .events import RequireRefused
from .own_hop import OwnHop
from .receipts import Receipts
from .session import Session
from .stanza import REQUIRE_VERDICTS
from .wire import carries_content, is_path, xml_text

log = logging.getLogger(__name__)


class RequirementNotMet(TrustPathError):
    """This client's verification of its own server cannot meet the requested ``<require/>``."""


@dataclass(eq=False)
class Signer:
    """The outgoing filter: :meth:`filter` is what slixmpp calls for every stanza it sends."""

    xmpp: BaseXMPP
    _config: Mapping[str, Any]
    _own_hop: OwnHop
    _session: Session
    _receipts: Receipts
    _clock: Callable[[], datetime]

    def filter(self, message: Any) -> Any:
        """``message`` as it is sent: attested, or as it was; None when it must not go (yet)."""
        if not isinstance(message, Message) or message["type"] in ("error", "groupchat"):
            return message  # a room rewrites a groupchat message: nothing signed before it verifies after
        try:
            return self._sign(message)
        except InvalidInput as exc:
            # the message is beyond what the core can sign (its limits, or a <report/> the signing
            # input cannot cover): sent as it is, it is shown as unverified
            log.warning("trust_path: could not attest message %s (%s); sending it without", message["id"], exc)
            return message

    def _sign(self, message: Message) -> Message | None:
        xml = message.xml
        if not carries_content(xml, message.namespace, with_path=False):
            return message
        if self._refused(message):
            return None
        required = xml.find(f"{{{NS}}}require")
        if required is not None and message["id"] and message["to"]:
            self._receipts.remember_required((message["to"].bare, message["id"]), required.get("verdict", ""))
        key = self._session.signing_key
        if not self._config["attest"] or key is None or not self.xmpp.boundjid.resource:
            if message["id"] and message["to"]:
                self._receipts.remember_sent((message["to"].bare, message["id"]), None)
            return message
        origin = xml.find(f"{{{NS_SID}}}origin-id")
        if origin is None or not origin.get("id"):
            if origin is not None:
                xml.remove(origin)
            # XEP-0359: the sender's own id for the message; without an 'id' it is what is signed
            origin = ET.SubElement(xml, f"{{{NS_SID}}}origin-id")
            origin.set("id", message["id"] or self.xmpp.new_id())
        if self._config["delivery_reports"] and not self._receipts.add_report(message):
            return None  # held until the acknowledged message is checked
        for child in list(xml):
            if isinstance(child.tag, str) and is_path(child.tag):
                xml.remove(child)  # this client's record is the first; anything else is not ours
        # what the server will parse: the bytes slixmpp writes (line ends normalized by the parser)
        root = parse_stanza(xml_text(xml).encode("utf-8"))
        remove_paths(root)
        root.set("from", self.xmpp.boundjid.full)
        if not root.get("to"):
            return message  # addressed to the account itself; nothing to attest across hops
        fields = message_fields(root)
        if not fields.id:
            # an id over the limit is no id (XEP rule 3): every verifier would refuse a record of it
            log.info("trust_path: message %.40s… has an id over %d characters; sent without a record",
                     message["id"], constants.MAX_ID_CHARS)
            self._receipts.remember_sent((fields.to.split("/", 1)[0], message["id"]), None)
            return message
        # the sending client's record: no signer (it is the message's 'from'), no time (its clock
        # is not checked), its view of H1; attest() lists in h= every payload present
        record = attest(fields, key, out_view=self._own_hop.own_view())
        add_record(root, record)
        path = find_path_element(root)
        assert path is not None
        xml.append(ET.fromstring(serialize(path)))
        self._receipts.remember_sent((fields.to.split("/", 1)[0], fields.id), record.sig)
        return message

    def _refused(self, message: Message) -> bool:
        """Add the configured ``<require/>``; True (and ``trust_path_require_refused``) when this
        client's own hop cannot meet the message's requirement."""
        xml = message.xml
        element = xml.find(f"{{{NS}}}require")
        if element is None and self._config["require"]:
            message["trust_path_require"] = self._config["require"]
            element = xml.find(f"{{{NS}}}require")
        if element is None:
            return False
        verdict = element.get("verdict", "")
        problem = requirement_problem(self._own_hop.own_view(), verdict) if verdict in REQUIRE_VERDICTS \
            else "malformed"
        if problem is None:
            return False
        log.warning("trust_path: not sending message %s: require=%r cannot be met (%s)", message["id"], verdict,
                    problem)
        self.xmpp.event("trust_path_require_refused", RequireRefused(message, verdict, problem))
        return True
