"""A session with this client's server: a fresh Ed25519 key announced with ``<session-key/>``, and
the server's keys read from its disco#info.  The server's keys and this client's own view of H1
are the anchor every received message is verified with (XEP: Protocol; Keys and Discovery
Caching for the refresh after an unknown key)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from slixmpp import BaseXMPP
from slixmpp.exceptions import IqError, IqTimeout

from ...core.keys import SigningKey
from ...core.model import View
from ...core.verify import Anchor, Report
from .own_hop import OwnHop
from .policy import DiscoveryFailed, ServerPolicy, ask_policy, unanswered

log = logging.getLogger(__name__)

#: the statuses of a server's last record that may mean "your copy of my keys is old"
STALE_KEY_STATUSES = ("key-unknown", "tampered")


class Session:
    """This client's key and its server's keys, for one session at a time.

    ``on_keys`` is called whenever messages waiting for the anchor can be checked (the server
    answered, or a refresh failed and the keys learned before stay).
    """

    def __init__(self, xmpp: BaseXMPP, config: Mapping[str, Any], own_hop: OwnHop,
                 on_keys: Callable[[], None]) -> None:
        self.xmpp = xmpp
        self.key: SigningKey | None = None
        self.key_refused = False  # the server refused the key: it cannot check what this client signs
        self.policy: ServerPolicy | None = None
        self.override: tuple[Anchor, int | None] | None = None  # set_anchor(): an anchor from elsewhere
        self.refreshing = False  # a new disco#info query after an unknown key: messages wait for it
        self.last_refresh = -math.inf
        self._config = config
        self._own_hop = own_hop
        self._on_keys = on_keys
        self._discovery: asyncio.Future[ServerPolicy] | None = None

    # --- what the session gives ------------------------------------------------------------------
    @property
    def signing_key(self) -> SigningKey | None:
        """The key to attest with: None before binding, and once the server refused it."""
        return None if self.key_refused else self.key

    @property
    def anchor(self) -> Anchor | None:
        """The anchor messages are verified with; None until the server has answered."""
        if self.override is not None:
            return self.override[0]
        if self.policy is None or self.refreshing:
            return None
        return Anchor(server=self.policy.domain, keys=self.policy.keys, me=self.xmpp.boundjid.full,
                      view=self._own_hop.own_view(), takes_part=self.policy.takes_part)

    def connection_view(self) -> View:
        """This client's view of its current connection to its server (H3 of what it receives)."""
        return self._own_hop.own_view()

    def anchor_for(self, view: View) -> Anchor | None:
        """The anchor for a message that came over a connection this client saw as ``view``
        (an injected anchor is used as it is)."""
        anchor = self.anchor
        if anchor is None or self.override is not None:
            return anchor
        return replace(anchor, view=view)

    def max_skew(self, configured: int) -> int:
        """An injected anchor's skew, else the server's 'max-skew', else ``configured``."""
        if self.override is not None and self.override[1] is not None:
            return self.override[1]
        if self.policy is not None and self.policy.max_skew is not None:
            return self.policy.max_skew
        return configured

    def keys_may_be_stale(self, report: Report) -> bool:
        """Whether ``report``'s last record, by this client's server, verifies with none of its
        known keys, and those keys are old enough to ask for again (XEP: Discovery and Keys)."""
        last = report.records[-1] if report.records else None
        return self.override is None and self.policy is not None and last is not None \
            and last.signer == self.policy.domain and last.status in STALE_KEY_STATUSES \
            and time.monotonic() - self.last_refresh >= float(self._config["key_refresh_interval"])

    # --- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """A new session: a new key, announced; the server's keys, queried."""
        self.key = SigningKey.generate()
        self.key_refused = False
        self.policy = None
        self.refreshing = False
        self._announce_key()
        self.discover()

    def refresh(self) -> None:
        """Ask for the server's keys again; the anchor is None until it answers."""
        self.refreshing = True
        self.discover()

    def discover(self) -> None:
        """Query the server's keys in the background (a query still under way is dropped)."""
        if self._discovery is not None and not self._discovery.done():
            self._discovery.cancel()
        self._discovery = asyncio.ensure_future(self.query_keys(), loop=self.xmpp.loop)

    async def query_keys(self) -> ServerPolicy:
        """Ask the server for its keys now; ``trust_path_ready`` follows with its answer."""
        domain = self.xmpp.boundjid.domain
        failed = None
        try:
            policy = await ask_policy(self.xmpp, domain, self._config["disco_timeout"])
        except DiscoveryFailed as exc:
            failed = str(exc)
        finally:
            self.last_refresh = time.monotonic()
            self.refreshing = False
        if failed is not None:
            if self.policy is not None and self.policy.domain == domain:
                # a failed refresh keeps what the server said before: it must not turn
                # "this server takes part" into "it does not"
                log.warning("trust_path: %s: %s; keeping the keys learned before", domain, failed)
                self._on_keys()
                return self.policy
            policy = unanswered(domain, failed)
        if policy.problem:
            log.warning("trust_path: %s: %s", domain, policy.problem)
        self.policy = policy
        self.xmpp.event("trust_path_ready", policy)
        self._on_keys()
        return policy

    def end(self) -> None:
        """The session ended: its key and its server's answer go with it."""
        self.key = None
        self.policy = None
        self.refreshing = False
        self._stop_discovery()

    def close(self) -> None:
        """The plugin is unloaded."""
        self._stop_discovery()
        self.key = None

    def _stop_discovery(self) -> None:
        if self._discovery is not None:
            self._discovery.cancel()
            self._discovery = None

    # --- the client key ------------------------------------------------------------------------
    def _announce_key(self) -> None:
        assert self.key is not None
        iq = self.xmpp.Iq()
        iq["type"] = "set"
        iq["trust_path_session_key"]["key"] = f"ed25519:{self.key.public}"
        if self._own_hop.view is not None:
            # this client's view of its hop, which the server judges the last hop of a message
            # with <require/> by when it delivers it here (XEP: Requiring Verified Hops)
            iq["trust_path_session_key"]["view"] = self._own_hop.own_view().text()
        future = iq.send(timeout=self._config["disco_timeout"])
        future.add_done_callback(partial(self._key_answered, key=self.key.public))

    def _key_answered(self, future: asyncio.Future[Any], *, key: str) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            log.debug("trust_path: the server accepted the session key %s", key)
        elif isinstance(exc, IqError):
            if self.key is not None and self.key.public == key:
                # the server cannot check our records: adding them would only show hop details
                self.key_refused = True
                log.warning("trust_path: the server refused the session key (%s); messages are sent without "
                            "a client record", exc.condition)
        elif isinstance(exc, IqTimeout):
            log.warning("trust_path: the server did not answer the session-key announcement")
        else:
            raise exc  # a bug, not an answer: to the event loop's exception handler
