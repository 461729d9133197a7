"""The protocol's constants, loaded from the one table both cores share (``spec/constants.json``,
packaged here as ``constants.json``): reason codes, strengths, method and key-source strengths,
limits, cipher suite names.

The string enums of :mod:`trustpath.core.model` (``Reason``, ``Chain``, ``KeySource``, ...) are
made from this table, so the Python and the Lua core name the same words.
"""

from __future__ import annotations

import json
from importlib import resources
from types import MappingProxyType
from typing import Any

TABLE: Any = json.loads(resources.files(__package__).joinpath("constants.json").read_text(encoding="utf-8"))

NS: str = TABLE["namespace"]
NS_PREFIX: str = TABLE["namespace_prefix"]

_LIMITS = TABLE["limits"]
MAX_STANZA_BYTES: int = _LIMITS["stanza_bytes"]
MAX_DEPTH: int = _LIMITS["depth"]
MAX_RECORDS: int = _LIMITS["records"]
MAX_RECORD_CHARS: int = _LIMITS["record_chars"]
SPKI_BYTES: int = _LIMITS["spki_bytes"]
DEFAULT_CACHE_FOR: int = _LIMITS["default_cache_for"]
MAX_REPORT_HOPS: int = _LIMITS["report_hops"]
MAX_ID_CHARS: int = _LIMITS["id_chars"]
MAX_JID_CHARS: int = _LIMITS["jid_chars"]
MAX_DOMAIN_CHARS: int = _LIMITS["domain_chars"]
MAX_REMOVED: int = _LIMITS["removed"]
DEFAULT_MAX_SKEW: int = _LIMITS["default_max_skew"]
MAX_SKEW_LIMIT: int = _LIMITS["max_skew"]
#: the most keys a domain publishes in one place (XEP: Discovery and Keys); a larger set is malformed
MAX_PUBLISHED_KEYS: int = _LIMITS["published_keys"]
#: a server fetches one domain's keys at most once in this many seconds (XEP: Discovery and Keys)
KEY_FETCH_INTERVAL: int = _LIMITS["key_fetch_interval"]

#: the strengths from worst to best (the order of :class:`~trustpath.core.model.Strength`)
STRENGTHS: tuple[str, ...] = tuple(TABLE["strengths"])
VERDICT_OF_STRENGTH: MappingProxyType[str, str] = MappingProxyType(TABLE["verdict_of_strength"])
HOP_RESULT_OF_STRENGTH: MappingProxyType[str, str] = MappingProxyType(TABLE["hop_result_of_strength"])
#: what each value of <require verdict=.../> needs of every hop
REQUIRED_STRENGTH: MappingProxyType[str, str] = MappingProxyType(TABLE["required_verdicts"])
#: method -> (strength, the reason code of a hop that this method caps, or None)
METHODS: MappingProxyType[str, tuple[str, str | None]] = MappingProxyType(
    {name: (entry["strength"], entry["reason"]) for name, entry in TABLE["methods"].items()})
OTHER_METHOD: tuple[str, str] = (TABLE["other_method"]["strength"], TABLE["other_method"]["reason"])
#: key source -> strength, None for ``link`` (as strong as the hop the key was learned over)
KEY_SOURCES: MappingProxyType[str, str | None] = MappingProxyType(TABLE["key_sources"])
REASONS: MappingProxyType[str, Any] = MappingProxyType(TABLE["reasons"])
RECORD_FAILURES: frozenset[str] = frozenset(TABLE["record_failures"])
CHAIN_FAILURES: frozenset[str] = frozenset(TABLE["chain_failures"])
TLS_VERSIONS: tuple[str, ...] = tuple(TABLE["tls_versions"])
CHANNEL_BINDINGS: tuple[str, ...] = tuple(TABLE["channel_bindings"])
#: c2s server-side view methods -> whether they bind the client's view of H1 to the channel
CLIENT_BINDINGS: MappingProxyType[str, bool] = MappingProxyType(TABLE["client_bindings"])
ALGORITHMS: tuple[str, ...] = tuple(TABLE["algorithms"])
#: covered payload token -> {"kind": text|require|report|element|refusal, "ns", "name"}
PAYLOADS: MappingProxyType[str, Any] = MappingProxyType(TABLE["payloads"])
DEFAULT_PAYLOADS: tuple[str, ...] = tuple(TABLE["default_payloads"])
RECORD_FIELDS: tuple[str, ...] = tuple(TABLE["record_fields"])
