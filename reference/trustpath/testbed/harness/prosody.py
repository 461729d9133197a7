"""Running one Prosody instance of the harness: its config, users, process and log."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
#: Prosody's plugin path for the module: it holds mod_trust_path/, the folder an operator installs
PLUGIN_DIR = REPO / "prosody"
MODULE_DIR = PLUGIN_DIR / "mod_trust_path"
#: the Ed25519 binding Prosody 0.12 needs (`make -C prosody` builds it)
BINDING = MODULE_DIR / "trust_path_crypto.so"
#: the test-only attacker (mod_trust_path_test_relay), kept outside the shipping folder
TEST_RELAY_DIR = PLUGIN_DIR / "test_relay"


class ProsodyMissing(RuntimeError):
    """Prosody is not installed; the message says how to get it."""


class ModuleMissing(ProsodyMissing):
    """mod_trust_path cannot load (its Ed25519 binding is not built): a federation started
    without it would run every scenario with every hop "not-participating"."""


def module_problem(module_dir: Path | None = None) -> str | None:
    """Why Prosody 0.12 could not load mod_trust_path from ``module_dir``, in one line with the
    command that fixes it; None when it can.  Prosody logs a module that fails to load and runs
    on without it, so the harness must ask before it starts a server, not after."""
    module_dir = module_dir or MODULE_DIR
    if not (module_dir / "mod_trust_path.lua").is_file():
        return f"{module_dir}/mod_trust_path.lua is missing: the harness runs the module from a checkout of this repository"
    binding = module_dir / BINDING.name
    build = (f"build it with `make -C {module_dir.parent}` (needs gcc, liblua5.4-dev and libsodium-dev, "
             f"or libssl-dev with `make -C {module_dir.parent} CRYPTO=openssl`)")
    if not binding.is_file():
        return f"mod_trust_path needs its Ed25519 binding {binding}, which is not built: {build}"
    lua = shutil.which("lua5.4")
    if lua is not None:
        # the library it was built against must load too (a build for another libsodium or Lua does not)
        probe = subprocess.run([lua, "-e", f"assert(package.loadlib({_lua(str(binding))}, 'luaopen_trust_path_crypto'))"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            why = (probe.stderr.strip().splitlines() or ["it does not load"])[-1]
            return f"mod_trust_path's Ed25519 binding {binding} does not load ({why}): re{build}"
    return None


def require_module(module_dir: Path | None = None) -> None:
    """Raise :class:`ModuleMissing` (one line: what is missing, the command that fixes it) unless
    Prosody can load mod_trust_path from ``module_dir``."""
    problem = module_problem(module_dir)
    if problem is not None:
        raise ModuleMissing(problem)


def prosody_binary() -> str:
    path = shutil.which("prosody")
    if path is None:
        raise ProsodyMissing("the live harness needs Prosody 0.12: `apt-get install prosody` on Debian/Ubuntu "
                             "(make test installs it when it can)")
    return path


def _lua(value: object) -> str:
    """A Python value as a Prosody config (Lua) literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(_lua(v) for v in value) + " }"
    if isinstance(value, dict):
        return "{ " + "; ".join(f'["{k}"] = {_lua(v)}' for k, v in value.items()) + " }"
    raise TypeError(f"no Lua form for {value!r}")


@dataclass
class Instance:
    """One server: a.example on 127.0.0.2, say."""

    domain: str
    address: str
    workdir: Path
    dns_port: int
    cert_file: str
    key_file: str
    ca_file: str
    c2s_port: int = 15222
    s2s_port: int = 15269
    modules: list[str] = field(default_factory=list)
    options: dict[str, object] = field(default_factory=dict)
    drop_modules: list[str] = field(default_factory=list)
    trust_anchor: str | None = None  # DNSSEC: libunbound validates with it, and DANE is used
    components: dict[str, str] = field(default_factory=dict)  # e.g. {"rooms.b.example": "muc"}
    #: load mod_posix, so that SIGHUP reloads the configuration (:meth:`reload`, prosodyctl reload)
    reloadable: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def plugin_paths(self) -> list[str]:
        """Where Prosody looks for modules: the module's folder, and the test-only modules' folder only
        if one of them (the test relay, the memory probe) is loaded."""
        paths = [str(PLUGIN_DIR)]
        if any(m.startswith("trust_path_test_") for m in self.modules):
            paths.append(str(TEST_RELAY_DIR))
        return paths

    @property
    def config_file(self) -> Path:
        return self.workdir / "prosody.cfg.lua"

    @property
    def log_file(self) -> Path:
        return self.workdir / "prosody.log"

    def write_config(self) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        base = ["roster", "saslauth", "tls", "dialback", "disco", "carbons", "offline", "ping", "mam",
                "s2s_auth_certs"]
        extra = ["posix"] if self.reloadable else []  # mod_posix: SIGHUP reloads the configuration
        unbound = f"resolvconf = false; hoststxt = false; forward = {_lua(f'127.0.0.1@{self.dns_port}')}; "
        if self.trust_anchor:
            # lua-unbound 1.0 takes one anchor as a string (ub_ctx_add_ta)
            unbound += f"trusted = {_lua(self.trust_anchor)}; "
        lines = [
            "-- written by the trustpath harness for one run; do not edit",
            f"pidfile = {_lua(str(self.workdir / 'prosody.pid'))}",
            f"data_path = {_lua(str(self.workdir / 'data'))}",
            "run_as_root = true",
            f"interfaces = {_lua([self.address])}",
            "local_interfaces = { }",
            f"c2s_ports = {_lua([self.c2s_port])}",
            f"s2s_ports = {_lua([self.s2s_port])}",
            "c2s_direct_tls_ports = { }",
            "http_ports = { }",
            "https_ports = { }",
            # debug logs every stanza: useful to read, but it skews any timing (TRUSTPATH_HARNESS_LOG)
            f"log = {{ {os.environ.get('TRUSTPATH_HARNESS_LOG', 'info')} = {_lua(str(self.log_file))} }}",
            f"plugin_paths = {_lua(self.plugin_paths)}",
            f"certificates = {_lua(str(self.workdir))}",
            f"modules_enabled = {_lua([m for m in base + self.modules + extra if m not in self.drop_modules])}",
            f"modules_disabled = {_lua(['s2s_bidi', 'admin_shell'] + ([] if self.reloadable else ['posix']))}",
            'authentication = "internal_hashed"',
            'storage = "internal"',
            "c2s_require_encryption = true",
            "s2s_require_encryption = true",
            "s2s_secure_auth = false",
            "archive_expires_after = \"never\"",
            "default_archive_policy = true",
            f"unbound = {{ {unbound}" + 'options = { ["do-not-query-localhost:"] = "no" } }',
            f"ssl = {{ cafile = {_lua(self.ca_file)} }}",
            # every federation the harness starts runs with these, so that measurements compare like
            # with like: without Nagle a change of stanza size does not stall on delayed ACKs, and
            # Lua 5.4's generational collector is Prosody's fastest
            "network_settings = { nagle = false }",
            'gc = { mode = "generational" }',
        ]
        self.options.setdefault("s2s_direct_tls_ports", [])
        if self.trust_anchor:
            # DANE needs every lookup of the target DNSSEC-secure; the zone has no AAAA (nor NSEC
            # to prove that), so IPv6 is not looked up
            lines += ["use_dane = true", "use_ipv6 = false"]
        for key, value in self.options.items():
            lines.append(f"{key} = {_lua(value)}")
        lines += [
            f"VirtualHost {_lua(self.domain)}",
            f"  ssl = {{ certificate = {_lua(self.cert_file)}; key = {_lua(self.key_file)}; "
            f"cafile = {_lua(self.ca_file)} }}",
        ]
        for name, module in self.components.items():
            # internal components (a room service) of this server, reached by its own clients
            lines.append(f"Component {_lua(name)} {_lua(module)}")
            # the server's certificate names its components too (they are reached over s2s)
            lines.append(f"  ssl = {{ certificate = {_lua(self.cert_file)}; key = {_lua(self.key_file)}; "
                         f"cafile = {_lua(self.ca_file)} }}")
            if module == "muc":
                lines.append("  muc_room_locking = false")  # a room is usable as soon as it is joined
        self.config_file.write_text("\n".join(lines) + "\n")

    def prosodyctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["prosodyctl", "--config", str(self.config_file), *args], capture_output=True,
                              text=True, timeout=60)

    def register(self, user: str, password: str) -> None:
        result = self.prosodyctl("register", user, self.domain, password)
        if result.returncode != 0:
            raise RuntimeError(f"prosodyctl register {user}@{self.domain} failed: {result.stderr.strip()}")

    def start(self, *, env: dict[str, str] | None = None, timeout: float = 15) -> None:
        self.process = subprocess.Popen([prosody_binary(), "-F", "--config", str(self.config_file)],
                                        stdout=subprocess.DEVNULL, stderr=open(self.workdir / "stderr.log", "wb"),
                                        env={**os.environ, **(env or {})}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prosody for {self.domain} exited with {self.process.returncode}; "
                                   f"see {self.log_file} and {self.workdir / 'stderr.log'}")
            if _listening(self.address, self.c2s_port) and _listening(self.address, self.s2s_port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"prosody for {self.domain} did not listen on {self.address} within {timeout} s")

    def restart(self, *, env: dict[str, str] | None = None) -> None:
        self.stop()
        self.write_config()
        self.start(env=env)

    def reload(self) -> None:
        """Write the configuration again and have the running server reload it (SIGHUP, as
        ``prosodyctl reload`` does; needs :attr:`reloadable`)."""
        if not self.reloadable:
            raise RuntimeError(f"{self.domain} runs without mod_posix: it cannot reload its configuration")
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.domain} is not running")
        self.write_config()
        os.kill(self.process.pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def log_lines(self, needle: str) -> list[str]:
        if not self.log_file.exists():
            return []
        return [line for line in self.log_file.read_text(errors="replace").splitlines() if needle in line]


def _listening(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((address, port)) == 0
