"""What trust-path adds to a message as its recipient gets it (XEP: size; brief: bytes per hop)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from ...core.codec import parse_stanza, serialize
from ...core.model import NS_PREFIX


@dataclass(frozen=True)
class PathSize:
    total: int  # the stanza's bytes, as received
    without: int  # the same stanza with every trust-path element removed
    hops: int

    @property
    def added(self) -> int:
        return self.total - self.without

    @property
    def per_hop(self) -> float:
        return self.added / self.hops


def path_size(stanza: bytes, hops: int) -> PathSize:
    """The bytes trust-path adds to ``stanza`` (as a client received it), per hop of its path.

    Both sizes are of the stanza as lxml serializes it, so that only the removed elements differ."""
    root = parse_stanza(stanza)
    total = len(serialize(root))
    for element in list(root.iter()):
        if isinstance(element.tag, str) and etree.QName(element).namespace.startswith(NS_PREFIX) \
                and element.getparent() is not None:
            element.getparent().remove(element)
    return PathSize(total, len(serialize(root)), hops)
