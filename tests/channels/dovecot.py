"""A private Dovecot IMAP server for the IMAP channel tests, with helpers to fill its mailbox.

Each server runs from its own temporary directory (config, sockets, state, maildir, log) on
a free loopback port, so it never touches or depends on a system Dovecot. Dovecot needs
root here: its login processes drop to `dovenull` and the mail processes to `dovecot`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from imapclient import IMAPClient

USERNAME = "contact"
PASSWORD = "imap-test-password"
PASSWORD_ENV = "CITIZENHUB_TEST_IMAP_PASSWORD"
START_TIMEOUT = 20.0

CONFIG = """\
# Written by tests/channels/dovecot.py: a private instance sharing nothing with the system's.
instance_name = citizenhub-test-{port}
base_dir = {root}/run
state_dir = {root}/state
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password is answered at once, not after the default 2 s that slows brute force.
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
# The mail user is the system `dovecot` account, whose uid is below Dovecot's default 500.
first_valid_uid = {uid}
first_valid_gid = {gid}
log_path = {root}/dovecot.log
mail_location = maildir:{root}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def dovecot_binary() -> str:
    """The dovecot executable; outside CI a machine without it (or without root) skips.

    CI must really run the IMAP tests, so there a missing Dovecot is a failure.
    """
    path = shutil.which("dovecot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin")
    problem = ""
    if path is None:
        problem = "dovecot is not installed (apt-get install dovecot-imapd)"
    elif os.geteuid() != 0:
        problem = "the private Dovecot must be started as root"
    else:
        try:
            pwd.getpwnam("dovecot")
            pwd.getpwnam("dovenull")
        except KeyError:
            problem = "the dovecot and dovenull users are missing (dovecot-core creates them)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; CI must run the IMAP tests", pytrace=False)
        pytest.skip(problem)
    return path


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DovecotServer:
    """One private Dovecot: `start`, `stop` and `start` again keep the same port and mail."""

    def __init__(self, root: Path, binary: str) -> None:
        self.root = root
        self.binary = binary
        self.port = free_loopback_port()
        self.config_path = root / "dovecot.conf"
        self.log_path = root / "dovecot.log"
        self.process: subprocess.Popen | None = None
        mail_user = pwd.getpwnam("dovecot")
        for name in ("run", "state", "mail"):
            (root / name).mkdir()
        os.chown(root / "mail", mail_user.pw_uid, mail_user.pw_gid)
        (root / "passwd").write_text(f"{USERNAME}:{{PLAIN}}{PASSWORD}\n")
        self.config_path.write_text(
            CONFIG.format(root=root, port=self.port, uid=mail_user.pw_uid, gid=mail_user.pw_gid)
        )

    # -- process -----------------------------------------------------------------------

    def start(self) -> None:
        assert self.process is None, "already running"
        console = (self.root / "console.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config_path)],
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        console.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"dovecot exited at start-up:\n{self.logs()}")
            if self._greets():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on port {self.port}:\n{self.logs()}")

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
                return connection.recv(200).startswith(b"* OK")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self) -> str:
        parts = []
        for name in ("console.log", "dovecot.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    # -- mailbox -----------------------------------------------------------------------

    def channel_settings(self, **overrides: object) -> dict:
        """Settings for an `email-imap` Channel that polls this server's mailbox."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "ssl": False,
            "username": USERNAME,
            "password_env": PASSWORD_ENV,
            "timeout": 10,
            **overrides,
        }

    @contextmanager
    def client(self) -> Iterator[IMAPClient]:
        with IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10) as client:
            client.login(USERNAME, PASSWORD)
            yield client

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        with self.client() as client:
            client.append(folder, raw)

    def create_folder(self, folder: str) -> None:
        with self.client() as client:
            client.create_folder(folder)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"]

    def recreate_folder(self, folder: str) -> int:
        """Delete and recreate a folder (not INBOX): it comes back empty with a new UIDVALIDITY,
        as after a server migration or mailbox rebuild. Returns the new UIDVALIDITY."""
        with self.client() as client:
            before = client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"]
            client.delete_folder(folder)
            client.create_folder(folder)
            after = client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"]
        assert after != before, "Dovecot kept the UIDVALIDITY of a recreated folder"
        return after

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """Each message's flags by UID, read without changing them (EXAMINE)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            return {uid: tuple(flags) for uid, flags in client.get_flags(uids).items()}


@contextmanager
def running_dovecot() -> Iterator[DovecotServer]:
    """Start a private Dovecot, yield it, then stop it and remove its directory."""
    binary = dovecot_binary()
    # Not under pytest's tmp_path: its parents are mode 0700, and Dovecot's unprivileged
    # processes (dovecot, dovenull) must traverse the path.
    root = Path(tempfile.mkdtemp(prefix="ch-dovecot-"))
    root.chmod(0o755)
    server = DovecotServer(root, binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
