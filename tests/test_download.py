"""Verified, resumable downloads against a local HTTP server (no internet needed)."""

from __future__ import annotations

import hashlib
import http.server
import importlib
import socket
import threading

import numpy as np
import pytest

dl = importlib.import_module("mulsupcon.data.download")  # the package attribute `download` is the function
reg = importlib.import_module("mulsupcon.data.registry")
cat = importlib.import_module("mulsupcon.data.catalogue")
from mulsupcon.data.download import ChecksumError, DownloadError, MissingDataError, ensure_files, fetch  # noqa: E402

from conftest import shared_data_dir


class _Server:
    """A tiny HTTP server on 127.0.0.1 serving in-memory files, with switchable misbehaviour.

    ``mode`` per path: "ok" (honours Range), "corrupt" (sends other bytes), "cut" (announces the
    full length, sends half, closes), "norange" (ignores Range, always sends everything).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.mode: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                mode = server.mode.get(self.path, "ok")
                if mode == "corrupt":
                    body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
                start = 0
                if rng and mode not in ("norange",):
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                if mode == "cut":
                    self.wfile.write(payload[: max(1, len(payload) // 2)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _payload(n: int = 200_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_fetch_success_verifies_and_installs(server, tmp_path):
    body = _payload()
    server.files["/a.bin"] = body
    dest = tmp_path / "sub" / "a.bin"
    out = fetch(server.url("/a.bin"), dest, sha256=_sha(body), size=len(body), progress=False)
    assert out == dest and dest.read_bytes() == body
    assert not dest.with_name("a.bin.part").exists()
    # Present and valid: no second request.
    n = len(server.requests)
    fetch(server.url("/a.bin"), dest, sha256=_sha(body), size=len(body), progress=False)
    assert len(server.requests) == n


def test_fetch_corrupt_download_is_rejected_and_removed(server, tmp_path):
    body = _payload()
    server.files["/a.bin"] = body
    server.mode["/a.bin"] = "corrupt"
    dest = tmp_path / "a.bin"
    with pytest.raises(ChecksumError, match="sha256"):
        fetch(server.url("/a.bin"), dest, sha256=_sha(body), size=len(body), progress=False)
    assert not dest.exists()
    assert not dest.with_name("a.bin.part").exists()


def test_fetch_wrong_size_is_rejected(server, tmp_path):
    body = _payload(1000)
    server.files["/a.bin"] = body
    dest = tmp_path / "a.bin"
    with pytest.raises(ChecksumError, match="size 1000 bytes, expected 999"):
        fetch(server.url("/a.bin"), dest, sha256=_sha(body), size=999, progress=False)
    assert not dest.exists()


def test_fetch_resumes_cut_transfer_with_range(server, tmp_path):
    body = _payload(300_001)
    server.files["/big.bin"] = body
    server.mode["/big.bin"] = "cut"
    dest = tmp_path / "big.bin"
    part = tmp_path / "big.bin.part"
    with pytest.raises(DownloadError, match="partial file kept"):
        fetch(server.url("/big.bin"), dest, sha256=_sha(body), size=len(body), progress=False)
    assert not dest.exists()
    half = len(body) // 2
    assert part.stat().st_size == half
    assert part.read_bytes() == body[:half]

    server.mode["/big.bin"] = "ok"
    fetch(server.url("/big.bin"), dest, sha256=_sha(body), size=len(body), progress=False)
    assert dest.read_bytes() == body
    assert not part.exists()
    assert server.requests[-1] == ("/big.bin", f"bytes={half}-")


def test_fetch_retries_resume_within_one_call(server, tmp_path):
    """With retries, repeated cuts (each delivering half of the rest) still converge."""
    body = _payload(4096)
    server.files["/c.bin"] = body
    server.mode["/c.bin"] = "cut"
    dest = tmp_path / "c.bin"
    fetch(server.url("/c.bin"), dest, sha256=_sha(body), size=len(body), progress=False, retries=20)
    assert dest.read_bytes() == body
    ranges = [r for p, r in server.requests if p == "/c.bin"]
    assert ranges[0] is None and ranges[1] == "bytes=2048-"


def test_fetch_restarts_when_server_ignores_range(server, tmp_path):
    body = _payload(50_000)
    server.files["/n.bin"] = body
    server.mode["/n.bin"] = "norange"
    dest = tmp_path / "n.bin"
    # A partial file that is NOT a prefix of the real one: must be overwritten, not appended to.
    (tmp_path / "n.bin.part").write_bytes(b"x" * 1000)
    fetch(server.url("/n.bin"), dest, sha256=_sha(body), size=len(body), progress=False)
    assert dest.read_bytes() == body
    assert server.requests[-1][1] == "bytes=1000-"


def test_fetch_refetches_corrupt_existing_file(server, tmp_path):
    body = _payload(10_000)
    server.files["/e.bin"] = body
    dest = tmp_path / "e.bin"
    dest.write_bytes(body[:-1] + b"\x00")  # same size, one byte wrong
    fetch(server.url("/e.bin"), dest, sha256=_sha(body), size=len(body), progress=False)
    assert dest.read_bytes() == body
    assert len(server.requests) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spec(url: str, body: bytes, rel: str = "toy/toy.bin") -> cat.DatasetSpec:
    return cat.DatasetSpec(
        name="toy",
        description="test",
        files=(cat.DataFile(rel, url, len(body), _sha(body)),),
    )


def test_no_network_error_names_path_url_and_command(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/toy.bin"
    body = b"hello"
    with pytest.raises(DownloadError, match="could not download"):
        fetch(url, tmp_path / "t.bin", sha256=_sha(body), progress=False)
    with pytest.raises(MissingDataError) as info:
        ensure_files(_spec(url, body), tmp_path, download=True, progress=False)
    msg = str(info.value)
    assert str(tmp_path / "toy" / "toy.bin") in msg
    assert url in msg
    assert "mulsupcon datasets download toy" in msg
    assert not (tmp_path / "toy" / "toy.bin").exists()


def test_missing_file_without_download_says_what_to_do(tmp_path):
    body = b"abc"
    url = "https://example.invalid/toy.bin"
    with pytest.raises(MissingDataError) as info:
        ensure_files(_spec(url, body), tmp_path, download=False)
    msg = str(info.value)
    assert "is missing" in msg and str(tmp_path / "toy" / "toy.bin") in msg and url in msg
    assert "mulsupcon datasets download toy" in msg and "sha256 " + _sha(body) in msg


def test_corrupt_local_file_is_never_used(tmp_path, server):
    body = _payload(5000)
    server.files["/toy.bin"] = body
    spec = _spec(server.url("/toy.bin"), body)
    target = tmp_path / "toy" / "toy.bin"
    target.parent.mkdir()
    target.write_bytes(body[::-1])
    with pytest.raises(MissingDataError, match="corrupt"):
        ensure_files(spec, tmp_path, download=False)
    paths = ensure_files(spec, tmp_path, download=True, progress=False)
    assert paths == [target] and target.read_bytes() == body
    # The file we fetched gets a verification sidecar; an unchanged file is then not re-hashed.
    assert (tmp_path / "toy" / "toy.bin.sha256ok").is_file()


def test_local_files_are_not_written_next_to(tmp_path, monkeypatch):
    """Verifying a user-provided file never writes into the data home (it may be shared/read-only)."""
    body = b"user data"
    target = tmp_path / "toy" / "toy.bin"
    target.parent.mkdir()
    target.write_bytes(body)
    before = sorted(p.name for p in target.parent.iterdir())
    dl._HASH_MEMO.clear()
    calls = []
    real = dl.sha256_file
    monkeypatch.setattr(dl, "sha256_file", lambda p: calls.append(p) or real(p))
    spec = _spec("https://example.invalid/toy.bin", body)
    assert ensure_files(spec, tmp_path, download=False) == [target]
    assert ensure_files(spec, tmp_path, download=False) == [target]
    assert len(calls) == 1  # memoised within the process
    assert sorted(p.name for p in target.parent.iterdir()) == before


def test_base_url_mirror_downloads_real_dataset_and_loads(tmp_path, monkeypatch):
    """A mirror of a data home (env MULSUPCON_BASE_URL) serves real files; they verify and load."""
    shared = shared_data_dir()
    if shared is None or not (shared / "flags").is_dir():
        pytest.skip("real 'flags' files not found under MULSUPCON_DATA; needed to serve a mirror")
    srv = _Server()
    try:
        spec = reg.get_spec("flags")
        for f in spec.files:
            srv.files["/mirror/" + f.path] = (shared / f.path).read_bytes()
        monkeypatch.setenv(dl.BASE_URL_ENV, srv.url("/mirror"))
        home = tmp_path / "home"
        paths = reg.download("flags", data_home=home, progress=False)
        assert [p.relative_to(home).as_posix() for p in paths] == [f.path for f in spec.files]
        for f, p in zip(spec.files, paths):
            assert p.stat().st_size == f.size and dl.sha256_file(p) == f.sha256
        train = reg.load("flags", "trainval", data_home=home)
        test = reg.load("flags", "test", data_home=home)
        assert (train.n_samples, test.n_samples, train.n_labels) == (129, 65, 7)
        assert all(r[0].startswith("/mirror/flags/") for r in srv.requests)
    finally:
        srv.close()


def test_resolve_url_prefers_argument_then_env(monkeypatch):
    monkeypatch.delenv(dl.BASE_URL_ENV, raising=False)
    assert dl.resolve_url("https://x/y", "a/b c.arff") == "https://x/y"
    monkeypatch.setenv(dl.BASE_URL_ENV, "http://mirror/")
    assert dl.resolve_url("https://x/y", "a/b c.arff") == "http://mirror/a/b%20c.arff"
    assert dl.resolve_url("https://x/y", "a/b", base_url="http://other") == "http://other/a/b"
