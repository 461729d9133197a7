"""Exceptions raised by trustpath.

Two families, as in h11: the caller misused the API (:class:`UsageError`), or the
data that came from the network or a file is not acceptable (:class:`InvalidInput`
and its subclasses).  A bad signature or a weak hop is *not* an exception: it is a
finding, reported in the :class:`~trustpath.verdict.Report`.
"""

from __future__ import annotations


class TrustPathError(Exception):
    """Base class of every exception this package raises on purpose."""


class UsageError(TrustPathError, ValueError):
    """The caller passed something this API cannot work with (a naive datetime, ...)."""


class InvalidInput(TrustPathError):
    """Input from the network or a file is not acceptable; the message says why."""


class MalformedStanza(InvalidInput):
    """The stanza is not well-formed XML, breaks the schema, or is not a message."""


class LimitExceeded(MalformedStanza):
    """The stanza is larger, deeper or carries more records than the XEP allows."""


class UnsupportedVersion(MalformedStanza):
    """The path uses a trust-path namespace version this implementation does not know."""


class UnsupportedAlgorithm(MalformedStanza):
    """A record names a signature algorithm other than ed25519."""


class ForgedWrapper(MalformedStanza):
    """A carbon copy or archive result that does not come from the recipient's own account."""


class InvalidAnchor(InvalidInput):
    """The recipient's trust anchor (its server's keys and its own view) is unusable."""


class InvalidPinStore(InvalidInput):
    """A pin store file cannot be read."""
