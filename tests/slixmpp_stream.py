"""slixmpp's mock stream with the one helper every plugin test needs: the next stanza sent."""

from __future__ import annotations

from slixmpp.test import SlixTest
from slixmpp.xmlstream import ET


class MockStream(SlixTest):
    """A client on slixmpp's mock stream (no network), whose sent stanzas a test reads back."""

    def sent(self) -> ET.Element | None:
        """The next stanza the client wrote, parsed, in jabber:client."""
        self.wait_()
        self.wait_for_send_queue()
        data = self.xmpp.socket.next_sent()
        if data is None:
            return None
        xml = self.parse_xml(data)
        self.fix_namespaces(xml)
        return xml


def disco_result(*, id: str, jid: str, key: str, domain: str = "localhost", max_skew: int | None = None) -> str:
    """A server's disco#info answer that announces trust-path (v1) and publishes ``key`` (base64,
    written as ``ed25519:<key>`` without padding)."""
    skew = "" if max_skew is None else \
        f"<field var='max-skew' type='text-single'><value>{max_skew}</value></field>"
    return f"""<iq type='result' id='{id}' from='{domain}' to='{jid}'>
  <query xmlns='http://jabber.org/protocol/disco#info'>
    <identity category='server' type='im'/>
    <feature var='urn:xmpp:trust-path:1'/>
    <x xmlns='jabber:x:data' type='result'>
      <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:trust-path:1</value></field>
      <field var='key' type='text-multi'><value>ed25519:{key.rstrip('=')}</value></field>{skew}
    </x>
  </query>
</iq>"""
