"""trustpath: the reference implementation of XEP-xxxx Trust Path (urn:xmpp:trust-path:0).

The protocol core (:mod:`trustpath.core`) is sans-I/O: :func:`attest` signs and
:func:`verify_stanza` checks a received stanza, with keys, TLS facts and the current time passed
in.  Adapters do the I/O: the client plugins (:mod:`trustpath.client`), the embedded federation
and the live harness (:mod:`trustpath.testbed`), the command line.
"""

from .core.anchor import anchor_from_json, anchor_to_json, load_anchor
from .core.attest import attest
from .core.errors import (
    InvalidAnchor,
    InvalidInput,
    LimitExceeded,
    MalformedStanza,
    TrustPathError,
    UnsupportedAlgorithm,
    UnsupportedVersion,
    UsageError,
)
from .core.keys import KeySet, KeyStatus, PublishedKey, SigningKey, spki_sha256, verify_signature
from .core.model import NS, Record, Chain, KeySource, MessageFields, Path, Result, Side, Strength, Verdict, View
from .core.receive import verify_stanza
from .core.signing import signing_input
from .core.verify import Anchor, HopReport, Report

__all__ = [
    "NS", "Anchor", "Record", "Chain", "HopReport", "InvalidAnchor", "InvalidInput", "KeySet", "KeySource",
    "KeyStatus", "LimitExceeded", "MalformedStanza", "MessageFields", "Path", "PublishedKey", "Report", "Result",
    "Side", "SigningKey", "Strength", "TrustPathError", "UnsupportedAlgorithm", "UnsupportedVersion", "UsageError",
    "Verdict", "View", "anchor_from_json", "anchor_to_json", "attest", "load_anchor", "signing_input",
    "spki_sha256", "verify_signature", "verify_stanza",
]
__version__ = "0.1.0"
