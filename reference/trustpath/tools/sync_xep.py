"""Keep the XEP's generated parts in step with the files they come from.

* each example after a ``<!-- trustpath:vector NAME -->`` comment gets the stanza of
  spec/vectors/scenarios/NAME.xml, indented for reading (whitespace between elements is
  not signed, so the example still verifies);
* the XML Schema section gets schemas/trust-path.xsd verbatim.

``--check`` changes nothing and exits 1 when the XEP is out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[3]  # the repository: reference/trustpath/tools/
XEP = ROOT / "xep" / "trust-path.xml"
VECTORS = ROOT / "spec" / "vectors" / "scenarios"
VECTOR_ROOT = ROOT / "spec" / "vectors"
SCHEMA = ROOT / "schemas" / "trust-path.xsd"

_EXAMPLE = re.compile(r"(<!-- trustpath:vector (?P<name>[\w./-]+) -->\s*<example caption='[^']*'><!\[CDATA\[)"
                      r"(?P<body>.*?)(\]\]></example>)", re.S)
_SCHEMA = re.compile(r"(<section1 topic='XML Schema' anchor='schema'>\s*<code[^>]*><!\[CDATA\[)"
                     r"(?P<body>.*?)(\]\]></code>)", re.S)


def vector_file(name: str) -> Path:
    """``NAME`` is a scenario vector; ``live/NAME`` a stanza captured from the live harness."""
    return (VECTOR_ROOT / f"{name}.xml") if "/" in name else (VECTORS / f"{name}.xml")


def pretty(data: bytes) -> str:
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    etree.indent(root, space="  ")
    return "\n" + etree.tostring(root, encoding="unicode") + "\n"


def render(text: str) -> str:
    def example(match: re.Match[str]) -> str:
        source = vector_file(match["name"])
        if not source.exists():
            raise SystemExit(f"sync_xep: no vector {source.relative_to(ROOT)} for the example it names")
        return match.group(1) + pretty(source.read_bytes()) + match.group(4)

    text = _EXAMPLE.sub(example, text)
    schema = SCHEMA.read_text(encoding="utf-8")
    if not _SCHEMA.search(text):
        raise SystemExit("sync_xep: the XEP has no <code> block in its XML Schema section")
    return _SCHEMA.sub(lambda m: m.group(1) + schema + m.group(3), text)


def main(argv: list[str]) -> int:
    text = XEP.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in argv:
        if new != text:
            print("sync_xep: xep/trust-path.xml is out of date; run `make vectors`", file=sys.stderr)
            return 1
        return 0
    XEP.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
