"""Downloads under faults from a local 127.0.0.1 server: 404, a connection closed mid-file, a server that
hangs, one that trickles, wrong bytes. Every test is bounded in time; nothing the user had is lost."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time

import pytest

from mulsupcon.data.catalogue import DataFile, DatasetSpec
from mulsupcon.data.download import ChecksumError, DownloadError, MissingDataError, ensure_files, fetch

BODY = bytes(range(256)) * 600  # 150 KiB: more than two 64 KiB blocks


class FaultyServer:
    """``mode``: ok | 404 | cut (announces the length, sends a third, closes) | hang (accepts, never answers)
    | trickle (a byte every 0.05 s) | wrong (other bytes of the right length)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                mode = server.mode
                if mode == "404":
                    self.send_error(404)
                    return
                if mode == "hang":
                    server.stop.wait(30)
                    return
                body = bytes(b ^ 0x5A for b in BODY) if mode == "wrong" else BODY
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if mode == "cut":
                    self.wfile.write(body[: len(body) // 3])
                    return
                if mode == "trickle":
                    for b in body:
                        if server.stop.wait(0.05):
                            return
                        self.wfile.write(bytes([b]))
                        self.wfile.flush()
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/f.bin"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FaultyServer()
    yield s
    s.close()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _spec(url: str) -> DatasetSpec:
    return DatasetSpec(name="toy", description="t", files=(DataFile("toy/f.bin", url, len(BODY), _sha(BODY)),))


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/f.bin"  # nothing listens there


def test_force_with_the_server_down_keeps_the_verified_file(tmp_path):
    target = tmp_path / "toy" / "f.bin"
    target.parent.mkdir()
    target.write_bytes(BODY)
    with pytest.raises(MissingDataError, match="could not be fetched"):
        ensure_files(_spec(_dead_url()), tmp_path, download=True, force=True, progress=False, retries=1, timeout=2)
    assert target.read_bytes() == BODY


@pytest.mark.parametrize("mode", ["404", "wrong", "cut"])
def test_a_failed_download_never_touches_the_users_file(server, tmp_path, mode):
    server.mode = mode
    target = tmp_path / "toy" / "f.bin"
    target.parent.mkdir()
    target.write_bytes(b"my own edited copy")
    with pytest.raises(MissingDataError):
        ensure_files(_spec(server.url), tmp_path, download=True, progress=False, retries=1, timeout=5)
    assert target.read_bytes() == b"my own edited copy"


def test_an_edited_file_is_kept_aside_when_a_verified_one_replaces_it(server, tmp_path):
    target = tmp_path / "toy" / "f.bin"
    target.parent.mkdir()
    target.write_bytes(b"my own edited copy")
    assert ensure_files(_spec(server.url), tmp_path, download=True, progress=False) == [target]
    assert target.read_bytes() == BODY
    assert (tmp_path / "toy" / "f.bin.replaced").read_bytes() == b"my own edited copy"


def test_a_hanging_server_gives_up_within_the_timeout_and_says_so(server, tmp_path):
    server.mode = "hang"
    t = time.monotonic()
    with pytest.raises(DownloadError, match="timed out|could not download"):
        fetch(server.url, tmp_path / "f.bin", sha256=_sha(BODY), size=len(BODY), progress=False, timeout=1, retries=1)
    assert time.monotonic() - t < 10  # 2 attempts x 1 s + a 1 s backoff, not 3 x 60 s
    assert not (tmp_path / "f.bin").exists()


def test_a_trickling_server_is_abandoned_as_stalled(server, tmp_path, capsys):
    server.mode = "trickle"
    t = time.monotonic()
    with pytest.raises(DownloadError, match="stalled"):
        fetch(server.url, tmp_path / "f.bin", sha256=_sha(BODY), size=len(BODY), progress=False, timeout=1, retries=1)
    assert time.monotonic() - t < 10
    assert "retrying" in capsys.readouterr().err  # the wait is announced
    assert (tmp_path / "f.bin.part").is_file()  # what arrived is kept to resume


def test_the_deadline_bounds_all_attempts(server, tmp_path):
    server.mode = "hang"
    t = time.monotonic()
    with pytest.raises(DownloadError):
        fetch(server.url, tmp_path / "f.bin", sha256=_sha(BODY), size=len(BODY), progress=False, timeout=1,
              retries=50, deadline=4)
    assert time.monotonic() - t < 9


def test_a_cut_transfer_resumes_and_wrong_bytes_are_refused(server, tmp_path):
    server.mode = "cut"
    with pytest.raises(DownloadError, match="partial file kept"):
        fetch(server.url, tmp_path / "f.bin", sha256=_sha(BODY), size=len(BODY), progress=False, timeout=5)
    assert (tmp_path / "f.bin.part").stat().st_size == len(BODY) // 3
    server.mode = "ok"  # this server ignores Range: the resume starts over, and still verifies
    fetch(server.url, tmp_path / "f.bin", sha256=_sha(BODY), size=len(BODY), progress=False, timeout=5)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    server.mode = "wrong"
    with pytest.raises(ChecksumError, match="corrupt"):
        fetch(server.url, tmp_path / "g.bin", sha256=_sha(BODY), size=len(BODY), progress=False, timeout=5)
    assert not (tmp_path / "g.bin").exists() and not (tmp_path / "g.bin.part").exists()
