"""poezio with the trust_path plugin, used as a person uses it: two poezio processes (alice and
bob) run in tmux against the live federation, keys are typed with ``send-keys`` and the screen is
read with ``capture-pane``.  Each test asserts what bob's screen shows.

The federation runs on addresses .41 and .42 of TRUSTPATH_LOOPBACK's network (127.0.0.41 and
127.0.0.42 by default; not the harness's default addresses, so that a ``trustpath harness --keep``
left running does not collide), in the test's own temporary directory.
poezio refuses to run as root: as root, it runs as ``nobody`` (``setpriv``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT

from trustpath.testbed.harness.world import loopback

ADDRESSES = {"a.example": loopback(41), "b.example": loopback(42)}
INTERCEPTOR = loopback(43)  # a man in the middle on H2, for the interception test
BINDING = ROOT / "prosody" / "mod_trust_path" / "trust_path_crypto.so"
NOBODY = 65534
WIDTH, HEIGHT = 160, 45


def _nobody_can_run(drop: list[str]) -> bool:
    """Whether ``nobody`` can import poezio and this package from this interpreter."""
    probe = subprocess.run([*drop, sys.executable, "-c", "import poezio, trustpath.client.poezio"], capture_output=True,
                           timeout=30, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    return probe.returncode == 0

def _missing() -> str | None:
    if importlib.util.find_spec("poezio") is None:
        return "poezio is not installed (pip install 'trustpath[poezio]', i.e. poezio==0.18)"
    if shutil.which("tmux") is None:
        return "tmux is not installed (apt-get install tmux)"
    if shutil.which("prosody") is None:
        return "Prosody is not installed (make test installs it on Debian/Ubuntu as root)"
    if not BINDING.exists():
        return "prosody/mod_trust_path/trust_path_crypto.so is not built (make test builds it)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "poezio does not run as root, and setpriv (util-linux) is missing to drop to nobody"
    return None


@pytest.fixture
def _requirements():
    problem = _missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


class Poezio:
    """One poezio process in its own tmux session, with a throwaway HOME."""

    def __init__(self, tmux: list[str], name: str, jid: str, address: str, ca_file: str, pin: str | None,
                 home: Path, *, launcher: bool = True) -> None:
        self.tmux, self.name, self.home = tmux, name, home
        from trustpath.client.poezio.home import write_poezio_home

        # the person pinned their server's key before (e.g. /pins add, read from the admin)
        made = write_poezio_home(home, jid=jid, password="pencil", address=address, ca_file=ca_file, pin=pin)
        env = {"TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin",
               **made.environment}
        command = ["env", "-i", *(f"{k}={v}" for k, v in env.items())]
        # ``trustpath poezio`` loads the plugin before the first connection; plain poezio after login
        module = "trustpath.client.poezio" if launcher else "poezio"
        poezio = [sys.executable, "-m", module, "-f", str(home / "poezio.cfg")]
        if os.geteuid() == 0:
            drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
            if _nobody_can_run(drop):
                for path in [home, *home.rglob("*")]:
                    os.chown(path, NOBODY, NOBODY)
                command += drop
            else:
                # the checkout is not readable by nobody (e.g. under /root): stay root, and get past
                # poezio's refusal to run as root, which is its only use of the effective uid
                run = "from trustpath.client.poezio.launch import main; main()" if launcher else \
                    "from poezio.poezio import main; main()"
                poezio = [sys.executable, "-c", "import os, sys; os.geteuid = lambda: 65534; "
                          f"sys.argv = ['poezio', '-f', {str(home / 'poezio.cfg')!r}]; {run}"]
        command += poezio
        shell = f"exec {shlex.join(command)} 2>{shlex.quote(str(home / 'stderr.log'))}"
        subprocess.run([*tmux, "new-session", "-d", "-s", name, "-x", str(WIDTH), "-y", str(HEIGHT), shell],
                       check=True, timeout=10)
        pid = subprocess.run([*tmux, "list-panes", "-t", name, "-F", "#{pane_pid}"], capture_output=True, text=True,
                             check=True, timeout=10).stdout.split()
        self.pid = int(pid[0])

    def type(self, line: str) -> None:
        """Type one line and press Enter (a command's ``/`` first, as poezio opens its command line on it)."""
        if line.startswith("/"):
            self._keys("-l", "/")
            time.sleep(0.2)
            line = line[1:]
        self._keys("-l", line)
        time.sleep(0.2)
        self._keys("Enter")
        time.sleep(0.2)

    def _keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True, timeout=10)

    def screen(self) -> str:
        result = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], check=False,
                                capture_output=True, text=True, timeout=10)
        return result.stdout

    def wait_for(self, pattern: str, timeout: float = 20) -> str:
        """The screen, once ``pattern`` (a regular expression) is on it."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(pattern, screen):
                return screen
            time.sleep(0.1)
        stderr = (self.home / "stderr.log").read_text(errors="replace")[-2000:] \
            if (self.home / "stderr.log").exists() else ""
        raise AssertionError(f"{self.name}'s screen never showed {pattern!r}:\n{screen}\nstderr:\n{stderr}")


class Session:
    """The federation and the poezio processes of one test; :meth:`close` stops all of it."""

    def __init__(self, tmp: Path, *, s2s_pins: bool, a_takes_part: bool = True, intercept: bool = False,
                 rooms: bool = False) -> None:
        from trustpath.testbed.harness.world import build_world

        self.tmp = tmp
        self.tmux = ["tmux", "-L", f"trustpath-test-{os.getpid()}-{tmp.name}", "-f", "/dev/null"]
        self.clients: list[Poezio] = []
        self.world = None
        # poezio's homes: a directory that ``nobody`` can enter (pytest's own is private to root)
        self.homes = Path(tempfile.mkdtemp(prefix="trustpath-poezio-"))
        os.chmod(self.homes, 0o755)

        def configure(domain: str, spki: dict[str, str]) -> dict[str, object]:
            other = "b.example" if domain == "a.example" else "a.example"
            return {"trust_path_s2s_pins": {other: [spki[other]]}} if s2s_pins else {}

        saved = tempfile.tempdir
        tempfile.tempdir = str(tmp)  # the world's files live in this test's directory
        try:
            self.world = build_world(addresses=ADDRESSES, configure=configure, intercept=intercept,
                                     interceptor_address=INTERCEPTOR,
                                     modules={"a.example": ["trust_path"] if a_takes_part else [],
                                              "b.example": ["trust_path"]},
                                     users=("alice", "bob", "carol"),
                                     components={"b.example": {"rooms.b.example": "muc"}} if rooms else None)
        except BaseException:
            shutil.rmtree(self.homes, ignore_errors=True)  # build_world stopped what it started
            raise
        finally:
            tempfile.tempdir = saved

    def poezio(self, name: str, jid: str, *, launcher: bool = True, pin: str | None = None,
               pinned: bool = True) -> Poezio:
        """``jid`` in poezio, its server pinned (to ``pin``, or its real key) unless not ``pinned``."""
        assert self.world is not None
        domain = jid.split("@")[1]
        client = Poezio(self.tmux, name, jid, ADDRESSES[domain], self.world.ca.ca_file,
                        (pin or self.world.spki[domain]) if pinned else None, self.homes / name, launcher=launcher)
        self.clients.append(client)
        return client

    def close(self) -> None:
        try:
            for client in self.clients:
                _stop(client.pid)
            subprocess.run([*self.tmux, "kill-server"], check=False, capture_output=True, timeout=10)
        finally:
            if self.world is not None:
                self.world.close()
            shutil.rmtree(self.homes, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stop(pid: int) -> None:
    """End one poezio this test started: SIGTERM (poezio exits cleanly on it), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        if not _alive(pid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)


@pytest.fixture
def session_factory(_requirements, tmp_path):
    sessions: list[Session] = []

    def make(**kwargs: bool) -> Session:
        session = Session(tmp_path, **kwargs)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


def _exchange(session: Session, body: str, *, alice_ready: str = r"takes part") -> Poezio:
    """alice and bob connect; bob opens the conversation; alice sends ``body``. Returns bob."""
    bob = session.poezio("bob", "bob@b.example")
    alice = session.poezio("alice", "alice@a.example")
    # the plugin reconnects once after it is loaded; "takes part" is shown after that
    bob.wait_for(r"takes part", timeout=15)
    alice.wait_for(alice_ready, timeout=15)
    bob.type("/message alice@a.example")
    bob.wait_for(r"\[alice@a\.example\]")
    alice.type("/message bob@b.example")
    alice.wait_for(r"\[bob@b\.example\]")
    alice.type(body)
    return bob


def test_a_trusted_exchange_shows_the_trusted_badge_and_the_path(session_factory):
    session = session_factory(s2s_pins=True)
    bob = _exchange(session, "hello bob")
    screen = bob.wait_for(r"alice> hello bob \[✔ trusted\]")
    assert screen.count("alice> hello bob [") == 1, "one badge on the message"
    bob.type("/path")
    screen = bob.wait_for(r"H3 recipient-c2s: b\.example → bob@b\.example")
    assert "trust path of “hello bob” from alice" in screen
    assert "✔ TRUSTED — every hop verified by a pin or DANE" in screen
    assert re.search(r"H1 sender-c2s: alice@a\.example/\S+ → a\.example", screen)
    assert re.search(r"H2 s2s: a\.example → b\.example\s+method pin / pin · result ✔ pass · reason – · "
                     r"key source s2s-pin · time \d{4}-\d\d-\d\dT", screen)
    assert "key source anchor" in screen
    # alice's sent message carries bob's report, which came back in his delivery receipt
    alice = session.clients[1]
    alice.wait_for(r"alice> hello bob \[delivered ✔ trusted\]")
    alice.type("/path")
    screen = alice.wait_for(r"the receipt's own path back: ✔ TRUSTED")
    assert "delivery of “hello bob”" in screen and "to bob@b.example, as its receipt reported it:" in screen
    assert "as the recipient's client reported it: ✔ TRUSTED" in screen
    assert re.search(r"H3 recipient-c2s: b\.example → bob@b\.example/\S+\s+method pin / tls-unique · "
                     r"result ✔ pass · reason – · key source anchor", screen)


def test_a_ca_only_s2s_link_shows_the_weak_badge_naming_h2(session_factory):
    session = session_factory(s2s_pins=False)
    bob = _exchange(session, "hello over a CA-only link")
    screen = bob.wait_for(r"alice> hello over a CA-only link "
                          r"\[◐ weak: H2 a\.example → b\.example, checked by a CA only\]")
    assert "✔ trusted" not in screen
    bob.type("/path")
    screen = bob.wait_for(r"H2 s2s: a\.example → b\.example")
    assert ("◐ WEAK — every hop verified, but some only by a certificate authority; "
            "weakest: H2 a.example → b.example, checked by a CA only") in screen
    assert re.search(r"H2 s2s: a\.example → b\.example\s+method pkix / pkix · result ✔ pass · "
                     r"reason ca-only \(checked by a CA only\)", screen)
    # reloading the plugin keeps what it showed
    bob.type("/unload trust_path")
    bob.type("/load trust_path")
    time.sleep(3)  # it reconnects once, so that the server's key is checked against the pins
    bob.type("/path")
    screen = bob.wait_for(r"(?s)trust path of “hello over a CA-only link”.*trust path of “hello over a CA-only link”")
    assert screen.count("alice> hello over a CA-only link [◐ weak") == 1, "one badge, not a second one"
    # the sender learns it too, from bob's report in his delivery receipt
    alice = session.clients[1]
    alice.wait_for(r"alice> hello over a CA-only link "
                   r"\[delivered ◐ weak: H2 a\.example → b\.example, checked by a CA only\]")


def test_a_changed_server_key_mid_conversation_is_a_warning_never_a_silent_re_pin(session_factory):
    session = session_factory(s2s_pins=True)
    bob = _exchange(session, "before the change")
    bob.wait_for(r"alice> before the change \[✔ trusted\]")
    old = session.world.spki["b.example"]
    pins_file = bob.home / ".local" / "share" / "poezio" / "trust_path" / "pins.json"
    pins_before = pins_file.read_text()
    # b.example gets a new key (a renewal without a backup pin, or an attacker: bob cannot tell)
    server = session.world.servers["b.example"]
    cred = session.world.ca.issue("b.example", "prosody-b.example-new-key")
    server.cert_file, server.key_file = cred.cert_file, cred.key_file
    server.restart()
    # in the conversation, where bob is looking (and in poezio's info buffer)
    screen = bob.wait_for(r"(?s)✘ trust_path: WARNING: b\.example presented a key that matches none of your pins"
                          r".*do not reconnect from this network", timeout=15)
    flat = re.sub(r"\s+", " ", screen)
    assert "The connection was closed before your password was sent, and nothing was re-pinned." in flat
    assert f"presented key: {cred.spki}" in flat
    assert old in flat
    assert "What to check: ask the administrator of b.example" in flat
    assert pins_file.read_text() == pins_before  # no silent re-pin
    time.sleep(2)  # poezio does not reconnect on its own to the unpinned key
    assert "Authentication success" not in bob.screen().split("matches none of your pins")[-1]
    # the person checked the new key with the administrator and pins it
    bob.type(f"/pins add b.example {cred.spki}")
    bob.wait_for(r"trust_path: pinned b\.example: " + re.escape(cred.spki))
    bob.type("/pins list")
    screen = bob.wait_for(r"b\.example:\s+\S+\s+configured")
    assert old in screen and cred.spki in screen
    bob.type("/reconnect")
    bob.wait_for(r"(?s)pins in .*takes part", timeout=15)
    bob.type("/pins list")
    bob.wait_for(re.escape(cred.spki) + r"\s+configured \(configured by you: a pin\), added \S+\s+← this connection")


def test_verified_hops_only_is_refused_at_a_ca_only_hop_and_never_delivered(session_factory):
    session = session_factory(s2s_pins=False)
    bob = _exchange(session, "first, without a requirement")
    bob.wait_for(r"alice> first, without a requirement \[◐ weak")
    alice = session.clients[1]
    alice.type("/require trusted")
    alice.wait_for(r"verified hops only: trusted")
    alice.type("the door code")
    # poezio wraps the line where the screen ends: any space may be a line break and an indent
    screen = alice.wait_for(r"✘ not delivered \(policy-violation\): the hop to b\.example is verified by 'pkix' "
                            r"\(ca-only: checked by a CA only\), and you required trusted "
                            r"\(refused by a\.example, over a trusted path\)".replace(" ", r"\s+"))
    time.sleep(1)
    assert "the door code" not in bob.screen()
    assert "the door code" in screen


@pytest.mark.parametrize(("stem", "badge_text", "weakest_line"), [
    ("01-all-pinned", "[✔ trusted]", None),
    ("02-h2-ca-only", "[◐ weak: H2 a.example → b.example, checked by a CA only]",
     "method pkix / pkix · result ✔ pass · reason ca-only (checked by a CA only) · key source s2s-pkix"),
    ("05-ss-not-participating", ("[? unknown: H1 alice@a.example/phone → a.example, does not take part; "
                                 "H2 a.example → b.example, does not take part]"),
     "result ? unknown · reason not-participating"),
    ("16-h2-mitm-ca-only", "[✘ untrusted: H2 a.example → b.example, the two ends saw different keys]",
     "result ✘ fail · reason key-mismatch (the two ends saw different keys)"),
])
def test_the_plain_text_badge_and_path_of_the_published_vectors(stem, badge_text, weakest_line):
    """What the poezio plugin prints, without poezio: words and a symbol for every verdict, and the
    weakest hop named by both ends with its reason in words."""
    import json

    from trustpath.core.anchor import load_anchor
    from trustpath.client.poezio.text import badge, path_lines
    from trustpath.core.receive import verify_stanza
    from trustpath.core.timefmt import parse_time

    base = ROOT / "spec" / "vectors" / "scenarios" / stem
    anchor, skew = load_anchor(f"{base}.anchor.json")
    now = parse_time(json.loads(Path(f"{base}.expected.json").read_text())["now"])
    report = verify_stanza(Path(f"{base}.xml").read_bytes(), anchor, now, max_skew=skew)
    assert badge(report) == badge_text
    lines = path_lines(report)
    symbol, word = badge_text[1:].rstrip("]").split(":")[0].split()
    assert lines[0].startswith(f"{symbol} {word.upper()} — ")
    assert [line.split(":")[0] for line in lines if line.startswith("H")] == ["H1 sender-c2s", "H2 s2s",
                                                                             "H3 recipient-c2s"]
    if weakest_line:
        assert weakest_line in "\n".join(lines)


# --- the pre-flight query, without poezio running (the server side is not needed) ------------------

def _preflight(**changes):
    from trustpath.client.slixmpp.plugin import Preflight
    from trustpath.core.model import Result, View
    from trustpath.core.preflight import forecast

    own = View("pin", Result.PASS, "1.2", "N9MO06A8vDfKkrco")
    out = View("pkix", Result.PASS, "1.3", "FokyVHZlU152vi+v")
    fields = {"domain": "b.example", "takes_part": True, "out_view": out, "own_view": own}
    fields.update(changes)
    return Preflight(forecast=forecast(fields["domain"], fields["takes_part"], fields["out_view"],
                                       fields["own_view"], "a.example"), **fields)


def test_the_plain_text_of_a_preflight():
    from trustpath.client.poezio.text import preflight_error, preflight_line, preflight_lines
    from trustpath.client.slixmpp.plugin import PreflightFailed
    from trustpath.core.errors import MalformedStanza, UsageError

    lines = preflight_lines(_preflight())
    assert lines == [
        ("pre-flight to b.example: H1 a.example verified by its pin; H2 b.example checked by a CA only; "
         "b.example takes part: at best weak"),
        "   H2 your server → b.example (your server's view): tls 1.3 · method pkix · result ✔ pass · reason –",
        "   key FokyVHZlU152vi+v",
        "   b.example takes part in trust-path: yes",
        ("   a forecast only: b.example's own check of H2 and its hop to the recipient are known once a message "
         "arrives")]
    none = preflight_lines(_preflight(out_view=None, takes_part=None))
    assert none[1] == "   H2 your server → b.example: no view (your server did not connect to b.example)"
    assert none[2] == "   b.example takes part in trust-path: not known"
    assert preflight_line(_preflight(takes_part=False)) == (
        "trust_path: pre-flight to b.example: H1 a.example verified by its pin; H2 b.example checked by a CA only; "
        "b.example does not take part: the path would be unknown")
    assert preflight_error("b.example", PreflightFailed("b.example", "item-not-found")) == (
        "trust_path: ✘ pre-flight to b.example: item-not-found (it is your own server's domain or a local service)")
    assert preflight_error("b.example", MalformedStanza("'link' must be method,result,tls,spki")).endswith(
        "your server's answer cannot be read ('link' must be method,result,tls,spki)")
    assert preflight_error("b.example", UsageError("a pre-flight is for a domain (b.example), not ''")) == (
        "trust_path: ✘ pre-flight to b.example failed: a pre-flight is for a domain (b.example), not ''")


class _Tab:
    """What the plugin uses of a poezio conversation tab: its JID and its lines."""

    def __init__(self, jid: str, shown: list) -> None:
        from slixmpp import JID

        self.jid = JID(jid)
        self.shown = shown

    def add_message(self, message) -> None:
        self.shown.append((str(self.jid), re.sub(r"\x19[^}]*}", "", message.txt)))  # without poezio's colour


def _offline_plugin(shown: list, tabs: list, preflight=None):
    """The poezio plugin with its parts, on a stand-in for poezio's core (no poezio running)."""
    from types import SimpleNamespace

    from slixmpp import JID
    from trustpath.client.poezio.preflight import Preflights
    from trustpath.client.poezio.require import RequireSetting
    from trustpath.client.poezio.screen import Screen
    from trustpath.client.poezio.trust_path import Plugin

    class Tabs(list):
        current_tab = None

    core = SimpleNamespace(xmpp=SimpleNamespace(boundjid=JID("alice@a.example/r")), tabs=Tabs(tabs),
                           refresh_window=lambda: None,
                           get_conversation_by_jid=lambda jid, create: next(
                               (tab for tab in tabs if tab.jid.bare == jid.bare), None))
    tp = SimpleNamespace(preflight=preflight, policy=None, view=None)
    screen = Screen(core, SimpleNamespace(information=lambda text, level: shown.append(("info", text)),
                                          current_tab=lambda: None))
    plugin = Plugin.__new__(Plugin)  # poezio's part of it (commands, configuration) is not used here
    plugin.require = RequireSetting(core, tp, screen)
    plugin.preflights = Preflights(core, tp, screen)
    return plugin, core, screen


def test_the_automatic_preflight_runs_once_per_domain_and_never_holds_a_message_back():
    pytest.importorskip("poezio")
    import asyncio

    from trustpath.client.slixmpp.plugin import PreflightFailed

    asked, shown = [], []

    async def preflight(domain):
        asked.append(domain)
        if domain == "c.example":
            raise PreflightFailed(domain, "service-unavailable")
        return _preflight(domain=domain, out_view=None, takes_part=True)

    bob, carol, me = _Tab("bob@b.example", shown), _Tab("carol@c.example", shown), _Tab("friend@a.example", shown)
    plugin, _, _ = _offline_plugin(shown, [bob, carol, me], preflight)

    async def scenario():
        for tab in (bob, bob, carol, me, bob):
            message = {"body": "hi"}
            plugin.on_say(message, tab)
            assert message == {"body": "hi"}  # nothing added without /require, nothing held back
        plugin.on_say({"body": ""}, carol)  # a chat state: no query
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert asked == ["b.example", "c.example"], "once per domain; never the own domain"
    assert ("bob@b.example", ("trust_path: pre-flight to b.example: H1 a.example verified by its pin; H2 b.example "
                              "not known (your server did not connect to it); b.example takes part: the path cannot "
                              "be forecast")) in shown
    assert ("carol@c.example", ("trust_path: ✘ pre-flight to c.example: service-unavailable (your server does not "
                                "offer the pre-flight query (it does not take part))")) in shown
    assert len(shown) == 2
    plugin.preflights.on_session_end()
    assert plugin.preflights.asked == set(), "a new session asks again"

    # /require in a conversation: its messages carry the requirement from then on
    plugin.require.command(bob, "trusted")
    assert shown[-1][0] == "bob@b.example" and shown[-1][1].startswith("verified hops only: trusted — messages to "
                                                                       "bob@b.example may travel only over hops")
    message = {"body": "the door code"}

    async def say():
        plugin.on_say(message, bob)
        await asyncio.sleep(0.01)

    asyncio.run(say())
    assert message["trust_path_require"] == "trusted"
    assert asked == ["b.example", "c.example", "b.example"], "asked again in the new session"

    # /preflight with a domain (or a JID) outside a conversation: the full answer in the info buffer
    shown.clear()
    asked.clear()

    async def command():
        plugin.preflights.command(None, "carol@b.example/phone")
        plugin.preflights.command(None, "")
        plugin.preflights.command(None, "not a domain")
        await asyncio.sleep(0.01)

    asyncio.run(command())
    assert asked == ["b.example"], "every /preflight asks, even for a domain asked about before"
    assert ("info", "usage: /preflight <domain> (or /preflight in a conversation)") in shown
    assert ("info", "/preflight: 'not a domain' is not a domain") in shown
    (full,) = [text for who, text in shown if text.startswith("pre-flight to b.example: ")]
    assert "\n   H2 a.example → b.example: no view (your server did not connect to b.example)\n" in full


def test_a_path_that_cannot_be_read_is_said_in_its_conversation():
    pytest.importorskip("poezio")
    from slixmpp.stanza import Message
    from trustpath.client.poezio.badges import Badges, ShownReports
    from trustpath.client.slixmpp.events import InvalidPath
    from trustpath.core.errors import MalformedStanza

    shown = []
    bob = _Tab("bob@b.example", shown)
    _, core, screen = _offline_plugin(shown, [bob])
    badges = Badges(core, ShownReports(), screen, colour=lambda: True)
    message = Message()
    message["from"], message["to"], message["id"], message["type"] = "bob@b.example/desk", "alice@a.example/r", \
        "m1", "chat"
    message["body"] = "hello"
    badges.on_invalid(InvalidPath(message, MalformedStanza("unknown attribute 'colour'")))
    assert shown == [("bob@b.example", "✘ trust path of message m1 cannot be read: unknown attribute 'colour'")]
    message["from"] = "carol@c.example/desk"  # no conversation open with carol: nothing to show it in
    badges.on_invalid(InvalidPath(message, MalformedStanza("unknown attribute 'colour'")))
    assert len(shown) == 1


def test_a_sending_server_that_does_not_take_part_shows_unknown(session_factory):
    session = session_factory(s2s_pins=False, a_takes_part=False)
    bob = _exchange(session, "hello from a plain server", alice_ready=r"does not take part")
    screen = bob.wait_for(r"alice> hello from a plain server \[\? unknown")
    assert "does not take part" in screen
    assert "✔ trusted" not in screen


def test_a_man_in_the_middle_on_h2_shows_untrusted_and_says_why(session_factory):
    session = session_factory(s2s_pins=False, intercept=True)
    bob = _exchange(session, "is anyone listening")
    screen = bob.wait_for(r"alice> is anyone listening \[✘ untrusted")
    assert "the two ends saw different keys" in screen
    assert "a.example → b.example" in screen


def _info_buffer(screen: str) -> str:
    """The info buffer beside the roster as one line: its lines wrap inside the right-hand column."""
    column = next((m.start() for m in map(re.compile(r"x\d\d:\d\d:\d\d ").search, screen.splitlines()) if m), None)
    assert column is not None, screen
    lines = [line[column + 1:].strip() for line in screen.splitlines() if line[column:column + 1] == "x"]
    return " ".join(lines)


def test_trustpath_poezio_checks_the_pin_before_the_first_password(session_factory):
    """``trustpath poezio`` loads the plugin before poezio connects: a key that matches no pin
    stops the very first login of a start, before the password is sent."""
    session = session_factory(s2s_pins=True)
    wrong = "A" * 43 + "="
    bob = session.poezio("bob", "bob@b.example", pin=wrong)
    bob.wait_for(r"✘ trust_path: WARNING: b\.example presented a key", timeout=15)
    bob.wait_for(r"Disconnected from server", timeout=15)
    flat = _info_buffer(bob.screen())
    assert "b.example presented a key that matches none of your pins" in flat
    assert "The connection was closed before your password was sent" in flat
    assert session.world.spki["b.example"] in flat and wrong in flat
    time.sleep(2)
    screen = bob.screen()
    assert "Authentication success" not in screen and "takes part" not in screen


def test_an_unpinned_server_is_not_pinned_silently_and_its_key_is_shown_with_where_to_compare_it(session_factory):
    """Issue 11, item 8: no silent first-use pin.  alice's poezio has no pin for a.example: it logs
    in (CA-checked), pins nothing, and shows the key in each form she can compare (the pin, its
    hex as a DANE record holds it, the SPKI hash records name) and where the real one is
    published; /pins accept takes a first-use pin, which counts as a pin only after /pins confirm."""
    import base64

    from trustpath.client.slixmpp.pins import PinStore
    from trustpath.core.keys import short_spki

    session = session_factory(s2s_pins=True)
    alice = session.poezio("alice", "alice@a.example", pinned=False)
    pin = session.world.spki["a.example"]
    alice.wait_for(r"compare", timeout=20)
    time.sleep(1)  # the whole message
    flat = _info_buffer(alice.screen())
    joined = re.sub(r"\s+", "", flat)  # a long key wraps inside the info column
    assert "a.example is not pinned, and nothing was pinned for you" in flat
    assert "at best ◐ weak" in flat
    assert pin in joined
    assert base64.b64decode(pin).hex() in joined
    assert short_spki(pin) in joined
    assert "TLSA311at_15222._tcp." in joined
    assert "https://a.example/.well-known/posh/xmpp-client.json" in joined
    assert "or its administrator" in flat
    assert "/pins accept then /pins confirm" in flat
    pins_file = alice.home / ".local" / "share" / "poezio" / "trust_path" / "pins.json"
    assert not PinStore.open(pins_file).is_pinned("a.example")  # nothing pinned on first use
    alice.type("/pins accept")
    screen = alice.wait_for(r"(?s)trust_path: pinned a\.example:.*If they match: /pins confirm")
    assert "_15222._tcp." in re.sub(r"\s+", "", screen)
    assert [p.source.value for p in PinStore.open(pins_file).pins("a.example")] == ["first-use"]
    # the next connection checks the first-use pin, and says again what to compare before /pins confirm
    alice.type("/reconnect")
    screen = alice.wait_for(r"(?s)was pinned on first use.*If they match: /pins confirm", timeout=20)
    joined = re.sub(r"\s+", "", _info_buffer(screen).split("was pinned on first use")[-1])
    assert pin in joined and base64.b64decode(pin).hex() in joined and "xmpp-client.json" in joined
    alice.type("/pins confirm")
    alice.wait_for(r"trust_path: confirmed the pin of a\.example")
    assert [(p.spki, p.source.value) for p in PinStore.open(pins_file).pins("a.example")] == [(pin, "confirmed")]


def test_the_key_to_compare_is_given_in_each_form_a_person_meets_it():
    """The pin poezio would take, as a DANE record (TLSA 3 1 1: SHA-256 of the SPKI, hex) and as
    records name it (the first 12 bytes), with where the real one is published."""
    import base64
    import hashlib

    from trustpath.client.poezio.server_key import compare_key

    spki = b"a SubjectPublicKeyInfo"
    digest = hashlib.sha256(spki).digest()
    pin = base64.b64encode(digest).decode()
    lines = compare_key("a.example", pin, 15222)
    text = "\n".join(lines)
    assert f"(SHA-256 of its SubjectPublicKeyInfo): {pin}" in text
    assert f"hex: {digest.hex()}" in text
    assert f"(SPKI hash): {base64.b64encode(digest[:12]).decode()}" in text
    assert "TLSA 3 1 1 at _15222._tcp." in text
    assert "https://a.example/.well-known/posh/xmpp-client.json" in text
    assert "administrator" in lines[-1]


def test_plain_poezio_reconnects_once_so_that_the_pin_is_checked(session_factory):
    """Loaded by plain poezio (after login), the plugin reconnects once and says why; then the
    badges work as with ``trustpath poezio``."""
    session = session_factory(s2s_pins=True)
    bob = session.poezio("bob", "bob@b.example", launcher=False)
    bob.wait_for(r"takes part", timeout=20)
    flat = _info_buffer(bob.screen())
    assert ("trust_path: reconnecting once, so that the key of b.example is checked against your pins before any "
            "credential is sent") in flat
    # then one disconnection and a second login, and only that one says whether the server takes part.
    # The reason poezio shows is slixmpp's and races the server: poezio's reconnect sends
    # </stream:stream> and aborts on the next turns of the event loop; when Prosody's own closing
    # tag arrives first, slixmpp replaces the plugin's reason with "End of stream" (more often
    # under load). Either is the same disconnection.
    assert re.search(r"reconnecting once, so that the key of b\.example.*"
                     r"Disconnected from server: (trust_path loaded|End of stream)\. .*"
                     r"Connected to server\. .*Authentication success\. .*b\.example takes part", flat), flat
    assert flat.count("Disconnected from server") == 1 and flat.count("Authentication success.") == 2, flat
    assert flat.count("takes part") == 1, flat
    alice = session.poezio("alice", "alice@a.example")
    alice.wait_for(r"takes part", timeout=15)
    assert "reconnecting once" not in alice.screen()
    bob.type("/message alice@a.example")
    bob.wait_for(r"\[alice@a\.example\]")
    alice.type("/message bob@b.example")
    alice.wait_for(r"\[bob@b\.example\]")
    alice.type("after a reconnection")
    bob.wait_for(r"alice> after a reconnection \[✔ trusted\]")


def test_history_from_the_archive_carries_its_badge(session_factory):
    """bob on a second device opens the conversation: poezio fetches the history from the archive
    (MAM), and each archived message carries the badge of its path as it was delivered."""
    session = session_factory(s2s_pins=False)
    bob = _exchange(session, "kept in the archive")
    bob.wait_for(r"alice> kept in the archive \[◐ weak")
    laptop = session.poezio("bob-laptop", "bob@b.example")
    laptop.wait_for(r"takes part", timeout=15)
    laptop.type("/message alice@a.example")
    screen = laptop.wait_for(r"alice> kept in the archive \[◐ weak: H2 a\.example → b\.example, checked by a CA "
                             r"only\]")
    assert "✔ trusted" not in screen
    laptop.type("/path")
    screen = laptop.wait_for(r"note: delivered to bob@b\.example/\S+, read here as bob@b\.example/\S+")
    assert "trust path of “kept in the archive” from alice" in screen


def test_messages_in_a_room_say_that_the_room_does_not_take_part(session_factory):
    """Rooms do not take part in this version: every groupchat message is unknown (XEP rule 26),
    never a false 'tampered' for the room's rewriting, never trusted."""
    session = session_factory(s2s_pins=True, rooms=True)
    bob = session.poezio("bob", "bob@b.example")
    carol = session.poezio("carol", "carol@b.example")
    bob.wait_for(r"takes part", timeout=15)
    carol.wait_for(r"takes part", timeout=15)
    bob.type("/join room@rooms.b.example/bob")
    bob.wait_for(r"room@rooms\.b\.example")
    carol.type("/join room@rooms.b.example/carol")
    carol.wait_for(r"room@rooms\.b\.example")
    time.sleep(1)
    carol.type("hello room")
    screen = bob.wait_for(r"carol> hello room \[\? unknown: the room does not take part\]")
    assert "✔ trusted" not in screen and "✘" not in screen
    bob.type("/path")
    screen = bob.wait_for(r"note: not-participating: the message came through a room")
    # (the room's occupant list borders each line on the right)
    assert "H2 s2s: rooms.b.example → b.example" in screen
    assert "method unknown · result ? unknown · reason not-participating (does not take part)" in screen
