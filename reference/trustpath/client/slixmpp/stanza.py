"""slixmpp stanza classes for the elements a client sends: <session-key/>, <require/> and the
pre-flight query <preflight/>.

The <path/> itself is not a stanza class: it is built and read by the reference core
(:mod:`trustpath.core.codec`), which is strict about every attribute, and is carried in the
message as plain XML.

The registrations (:func:`register_stanzas`) are class-wide in slixmpp, shared by every client in
the process: they are counted, and undone with the last plugin that needs them.
"""

from __future__ import annotations

from typing import ClassVar

from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream import ET, ElementBase, register_stanza_plugin

from ...core.model import NS

REQUIRE_VERDICTS = ("trusted", "weak")


class SessionKey(ElementBase):
    """``<iq type='set'><session-key xmlns='urn:xmpp:trust-path:1' key='ed25519:...'/></iq>`` (XEP:
    Session Key Announcement; named so as not to collide with the Client Key Support ProtoXEP's
    ``<client-key/>``); ``iq['trust_path_session_key']['key']`` is the ``alg:key`` text, and
    ``['view']`` this client's view of its connection to the server (``method,result,tls,spki``)."""

    namespace = NS
    name = "session-key"
    plugin_attrib = "trust_path_session_key"
    interfaces: ClassVar[set[str]] = {"key", "view"}


class Preflight(ElementBase):
    """``<iq type='get'><preflight xmlns='urn:xmpp:trust-path:1' domain='b.example'/></iq>``: ask this
    client's own server how the path to ``domain`` would be verified now (the pre-flight query);
    ``iq['trust_path_preflight']['domain']``.  The answer is read strictly by the plugin
    (:meth:`trustpath.client.slixmpp.plugin.TrustPath.preflight`), not through this class."""

    namespace = NS
    name = "preflight"
    plugin_attrib = "trust_path_preflight"
    interfaces: ClassVar[set[str]] = {"domain"}


class Require(ElementBase):
    """``<require xmlns='urn:xmpp:trust-path:1' verdict='trusted'/>`` on a message.

    Used as ``msg['trust_path_require'] = 'trusted'`` (or ``'weak'``); reads ``''`` when
    absent.  Like XEP-0184's request, it works on the parent message directly, so that
    reading it never adds an empty element to the message (which every record
    signs).
    """

    namespace = NS
    name = "require"
    plugin_attrib = "trust_path_require"
    interfaces: ClassVar[set[str]] = {"trust_path_require"}
    is_extension = True

    def setup(self, xml: ET.Element | None = None) -> bool:  # slixmpp's signature; the xml is not used
        # an extension reads and writes its parent's element: it has none of its own
        self.xml = ET.Element("")
        return True

    def get_trust_path_require(self) -> str:
        element = self.parent().xml.find(f"{{{NS}}}require")
        return "" if element is None else element.get("verdict", "")

    def set_trust_path_require(self, verdict: str | None) -> None:
        if verdict and verdict not in REQUIRE_VERDICTS:
            raise ValueError(f"<require/> takes verdict 'trusted' or 'weak', not {verdict!r}")
        self.del_trust_path_require()
        if verdict:
            element = ET.Element(f"{{{NS}}}require")
            element.set("verdict", verdict)
            self.parent().xml.append(element)

    def del_trust_path_require(self) -> None:
        parent = self.parent().xml
        for element in parent.findall(f"{{{NS}}}require"):
            parent.remove(element)


PARENTS: tuple[tuple[type[ElementBase], type[ElementBase]], ...] = (
    (Iq, SessionKey), (Iq, Preflight), (Message, Require))

_holders = 0  # plugins that registered the stanza classes and have not unregistered them


def register_stanzas() -> None:
    """Make ``iq['trust_path_session_key']``, ``iq['trust_path_preflight']`` and
    ``msg['trust_path_require']`` known to slixmpp, for one more plugin."""
    global _holders
    for parent, plugin in PARENTS:
        register_stanza_plugin(parent, plugin)
    _holders += 1


def unregister_stanzas() -> None:
    """One plugin less needs the registrations; the last one undoes them."""
    global _holders
    _holders -= 1
    if _holders > 0:
        return
    for parent, plugin in PARENTS:
        tag = f"{{{plugin.namespace}}}{plugin.name}"
        if parent.plugin_attrib_map.get(plugin.plugin_attrib) is plugin:
            del parent.plugin_attrib_map[plugin.plugin_attrib]
        if parent.plugin_tag_map.get(tag) is plugin:
            del parent.plugin_tag_map[tag]


def stanza_holders() -> int:
    """How many plugins hold the registrations now."""
    return _holders
