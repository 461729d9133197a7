"""This client's own hop (H1): the check of its server's certificate key against the pins, before
any credential is sent, and this client's view of the hop that every record it signs states.

slixmpp emits ``ssl_cert`` synchronously, after the TLS handshake and before the stream header:
the only moment a mismatch can still close the connection before a password goes out.

Channel binding (XEP: the sending server's view of H1 binds the client's statements only when it
checked SASL channel binding): slixmpp 1.17 chooses SCRAM-SHA-*-PLUS by itself when the server
offers it and the connection has a binding to give, but Python's ssl module only has
``tls-unique``, which TLS 1.3 does not define.  With ``bind_channel`` the plugin caps the c2s TLS
version at 1.2 so that the binding exists, and records whether SASL used it.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from slixmpp import BaseXMPP

from ...core.errors import TrustPathError
from ...core.keys import short_spki, spki_sha256
from ...core.model import Result, View
from .events import PinMismatch
from .pins import PinStore

log = logging.getLogger(__name__)

TLS_VERSIONS = {"TLSv1.3": "1.3", "TLSv1.2": "1.2"}

#: SASL's answer to "what does this connection offer?" (slixmpp's ``security_callback``)
SecurityCallback = Callable[[Any], dict[str, Any]]


class OwnHop:
    """The c2s hop as this client saw it: ``view`` is None before TLS, or without TLS."""

    def __init__(self, xmpp: BaseXMPP, store: PinStore | None, config: Mapping[str, Any],
                 clock: Callable[[], datetime]) -> None:
        self.xmpp = xmpp
        self.store = store
        self.view: View | None = None
        #: the full pin (base64 SHA-256 of the SPKI) of the key the server presented on this connection
        self.server_pin: str | None = None
        #: the SASL channel binding this session authenticated with ("tls-unique"), or None
        self.channel_binding: str | None = None
        self._config = config
        self._clock = clock
        self._sasl_default: SecurityCallback | None = None

    def own_view(self) -> View:
        """The view this client attests: what TLS showed, or an unverified hop without TLS."""
        if self.view is not None:
            return self.view
        return View(method="none", result=Result.NONE, tls="none")

    def cap_tls_for_binding(self) -> None:
        """With ``bind_channel``: no TLS above 1.2 on the c2s stream, so that ``tls-unique`` exists
        and slixmpp can use SCRAM-*-PLUS (Python's ssl has no ``tls-exporter``)."""
        if self._config.get("bind_channel"):
            ctx = self.xmpp.ssl_context
            if ctx is None:
                return
            if ctx.minimum_version is not ssl.TLSVersion.MINIMUM_SUPPORTED \
                    and ctx.minimum_version > ssl.TLSVersion.TLSv1_2:
                # capping would leave no protocol at all: say why there will be no binding instead
                log.warning("trust_path: bind_channel needs TLS 1.2, but the SSL context requires %s; "
                            "this client authenticates without channel binding", ctx.minimum_version.name)
                return
            if ctx.maximum_version is ssl.TLSVersion.MAXIMUM_SUPPORTED or ctx.maximum_version > ssl.TLSVersion.TLSv1_2:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def refresh_method(self) -> None:
        """After a pin changed (e.g. a first-use pin was confirmed): the method this connection's
        view states follows the pin's provenance."""
        if self.view is None or self.server_pin is None or self.store is None:
            return
        pin = self.store.check(self.xmpp.boundjid.domain, self.server_pin)
        if pin is not None:
            self.view = replace(self.view, method=pin.source.method, result=Result.PASS)

    # --- slixmpp events ------------------------------------------------------------------------
    def on_connecting(self, _: Any) -> None:
        self.view = None
        self.server_pin = None
        self.channel_binding = None
        self.cap_tls_for_binding()

    def on_ssl_cert(self, pem: str) -> None:
        try:
            self._check(pem)
        except Exception:
            # fail closed: whatever went wrong, an unchecked server gets no credentials; the error
            # still goes on to slixmpp, which logs it as the bug it is
            log.error("trust_path: checking the server's certificate failed; closing the connection")
            self.view = None
            self._abort()
            raise

    def on_auth_success(self, _: Any) -> None:
        sasl = self.xmpp.plugin.get("feature_mechanisms", None)
        mech = sasl.mech if sasl is not None else None
        # only slixmpp's SCRAM mechanisms have the attribute; SCRAM-PLUS binds with tls-unique (TLS 1.2 only)
        if self.view is not None and getattr(mech, "use_channel_binding", False) \
                and getattr(mech, "credentials", {}).get("channel_binding"):
            self.channel_binding = "tls-unique"
        elif self._config.get("bind_channel"):
            log.warning("trust_path: %s authenticated without channel binding (it offers no SCRAM-*-PLUS, or the "
                        "stream is not TLS 1.2); its record of this hop will say so, and recipients rate H1 at "
                        "most 'ca' (unbound)", self.xmpp.boundjid.domain)

    # --- SASL ----------------------------------------------------------------------------------
    def guard_sasl(self) -> None:
        """Put :meth:`_security` in front of SASL's own view of the connection."""
        sasl = self.xmpp.plugin.get("feature_mechanisms", None)
        if sasl is not None:
            self._sasl_default = sasl.security_callback
            sasl.security_callback = self._security

    def unguard_sasl(self) -> None:
        sasl = self.xmpp.plugin.get("feature_mechanisms", None)
        if sasl is not None and sasl.security_callback == self._security:
            sasl.security_callback = self._sasl_default

    def _security(self, values: Any) -> dict[str, Any]:
        """SASL's view of the connection: a pinned server's stream without TLS counts as unencrypted,
        whatever the application allows, so that no mechanism sends credentials over it."""
        assert self._sasl_default is not None
        result = dict(self._sasl_default(values))
        domain = self.xmpp.boundjid.domain
        if self.store is not None and self.store.is_pinned(domain) and self.view is None:
            log.error("trust_path: %s is pinned but this stream has no TLS; no credentials are sent", domain)
            for name in values:
                if name == "encrypted" or name.startswith("unencrypted_"):
                    result[name] = False
        return result

    # --- the check -----------------------------------------------------------------------------
    def _ca_verified(self) -> bool:
        ctx = self.xmpp.ssl_context
        return ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and bool(ctx.check_hostname)

    def _check(self, pem: str) -> None:
        transport = self.xmpp.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        if not der:
            der = ssl.PEM_cert_to_DER_cert(pem)
        spki = spki_sha256(der)
        domain = self.xmpp.boundjid.domain
        tls = TLS_VERSIONS.get(ssl_object.version() or "") if ssl_object is not None else None
        if self._ca_verified():
            method, result = "pkix", Result.PASS
        else:
            method, result = "none", Result.NONE
        store = self.store
        self.server_pin = spki
        if store is not None and store.is_pinned(domain):
            pin = store.check(domain, spki)
            if pin is None:
                self.view = None
                log.error("trust_path: %s presented the key %s, which matches none of its pins; "
                          "closing the connection before any credential is sent", domain, spki)
                self._abort()
                self.xmpp.event("trust_path_pin_mismatch", PinMismatch(domain, spki))
                return
            # a configured or confirmed pin is 'pin'; a first-use pin nobody confirmed is 'tofu'
            # (XEP: an attacker on the first connection would have chosen it)
            method, result = pin.source.method, Result.PASS
        elif store is not None and self._config["first_use"]:
            # this session stays as verified as it was: the pin (a 'tofu' one until a person
            # confirms it) protects the next ones
            try:
                store.pin_first_use(domain, spki, now=self._clock())
                log.info("trust_path: pinned %s to %s on first use", domain, spki)
            except (OSError, TrustPathError) as exc:
                log.error("trust_path: could not pin %s on first use: %s", domain, exc)
        if tls is None:
            # older than TLS 1.2: not a version the XEP can state; describe it as unprotected
            log.warning("trust_path: %s negotiated %s; the hop is reported as unverified", domain,
                        ssl_object.version() if ssl_object is not None else "?")
            self.view = View(method="none", result=Result.NONE, tls="none")
            return
        self.view = View(method=method, result=result, tls=tls, spki=short_spki(spki))

    def _abort(self) -> None:
        if self.xmpp.transport is not None:
            self.xmpp.abort()
        else:
            self.xmpp.cancel_connection_attempt()
