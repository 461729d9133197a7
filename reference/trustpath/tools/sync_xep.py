"""Keep the XEP's generated parts in step with the files they come from.

* each example after a ``<!-- trustpath:vector NAME -->`` comment gets the stanza of
  spec/vectors/scenarios/NAME.xml, indented for reading (whitespace between elements is
  not signed, so the example still verifies);
  each record of a ``<path/>`` on a line of its own (white space between records is not
  signed either);
* each ``<code/>`` after a ``<!-- trustpath:signing NAME INDEX -->`` comment gets the signing
  input of record INDEX of spec/vectors/signing/NAME.json, with NUL written as ``\\0``;
* the XML Schema section gets schemas/trust-path.xsd verbatim.

``--check`` changes nothing and exits 1 when the XEP is out of date.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from copy import deepcopy as copy_element

from lxml import etree

from trustpath.core import constants

ROOT = Path(__file__).resolve().parents[3]  # the repository: reference/trustpath/tools/
XEP = ROOT / "xep" / "trust-path.xml"
VECTORS = ROOT / "spec" / "vectors" / "scenarios"
VECTOR_ROOT = ROOT / "spec" / "vectors"
SCHEMA = ROOT / "schemas" / "trust-path.xsd"

_EXAMPLE = re.compile(r"(<!-- trustpath:vector (?P<name>[\w./-]+) -->\s*<example caption='[^']*'><!\[CDATA\[)"
                      r"(?P<body>.*?)(\]\]></example>)", re.S)
_SIGNING = re.compile(r"(<!-- trustpath:signing (?P<name>[\w.-]+) (?P<index>\d+) -->\s*<code caption='[^']*'><!\[CDATA\[)"
                      r"(?P<body>.*?)(\]\]></code>)", re.S)
_SCHEMA = re.compile(r"(<section1 topic='XML Schema' anchor='schema'>\s*<code[^>]*><!\[CDATA\[)"
                     r"(?P<body>.*?)(\]\]></code>)", re.S)


def vector_file(name: str) -> Path:
    """``NAME`` is a scenario vector; ``live/NAME`` a stanza captured from the live harness."""
    return (VECTOR_ROOT / f"{name}.xml") if "/" in name else (VECTORS / f"{name}.xml")


def pretty(data: bytes) -> str:
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    original = etree.fromstring(data, parser)
    etree.indent(root, space="  ")
    # white space inside a covered element payload is signed (XEP: Covered Payloads): keep it as it was
    payloads = {f"{{{spec['ns']}}}{spec['name']}" for spec in constants.PAYLOADS.values() if spec["kind"] == "element"}
    for shown, kept in zip(root.iter(), original.iter()):
        if isinstance(shown.tag, str) and shown.tag in payloads:
            copy = copy_element(kept)
            copy.tail = shown.tail
            shown.getparent().replace(shown, copy)
    for path in root.iter("{urn:xmpp:trust-path:1}path"):
        depth = len(list(path.iterancestors()))
        pad = "\n" + "  " * (depth + 1)
        path.text = pad + pad.join((path.text or "").split()) + "\n" + "  " * depth
    return "\n" + etree.tostring(root, encoding="unicode") + "\n"


def signing_text(data: str, width: int = 100) -> str:
    """A signing input for reading: NUL as \\0, lines broken after each field."""
    shown = data.replace("\\", "\\\\").replace("\x00", "\\0")
    lines = []
    for part in re.split(r"(?<=\\0)(?=[a-z]+\\0|urn)", shown):
        while len(part) > width:
            lines.append(part[:width])
            part = part[width:]
        lines.append(part)
    return "\n".join(line for line in lines if line)


def read_signing_text(text: str) -> str:
    """The inverse of :func:`signing_text`."""
    joined = "".join(text.strip("\n").split("\n"))
    return re.sub(r"\\(0|\\)", lambda m: "\x00" if m.group(1) == "0" else "\\", joined)


def render(text: str) -> str:
    def example(match: re.Match[str]) -> str:
        source = vector_file(match["name"])
        if not source.exists():
            raise SystemExit(f"sync_xep: no vector {source.relative_to(ROOT)} for the example it names")
        return match.group(1) + pretty(source.read_bytes()) + match.group(4)

    def signing(match: re.Match[str]) -> str:
        source = ROOT / "spec" / "vectors" / "signing" / f"{match['name']}.json"
        if not source.exists():
            raise SystemExit(f"sync_xep: no signing vector {source.relative_to(ROOT)}")
        record = json.loads(source.read_text(encoding="utf-8"))["records"][int(match["index"])]
        return match.group(1) + "\n" + signing_text(record["signing_input"]) + "\n" + match.group(5)

    text = _EXAMPLE.sub(example, text)
    text = _SIGNING.sub(signing, text)
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
