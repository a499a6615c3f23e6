"""Verified, resumable downloads of dataset files, and the check that a data home holds them.

Design choices (why):

* Every registered file carries its byte size and sha256. A file is used only after its hash has
  been checked; a download lands in ``<dest>.part`` and is moved into place with ``os.replace``
  only once size and hash agree, so a reader never sees a half-written or corrupt file.
* An interrupted transfer keeps ``<dest>.part``; the next call resumes it with an HTTP ``Range``
  request. A server that ignores ``Range`` (answers 200 instead of 206) makes us start over.
* Local files are verified lazily. A file that this module downloaded gets a small sidecar
  ``<file>.sha256ok`` (JSON: size, mtime_ns, sha256) so later loads skip hashing while the file is
  unchanged. Files that were put in the data home by someone else are never written next to: the
  data home may be a shared, read-only folder (and permission bits do not stop root), so such a
  file is hashed once per process (an in-memory memo avoids repeats). Hashing runs at several
  hundred MB/s, so even the largest registered file (bookmarks, 49 MB) costs well under a second.
* ``MULSUPCON_BASE_URL`` (or ``base_url=``) replaces the public location of every file by
  ``<base_url>/<path in the data home>``: a mirror is just a copy of a data home served over HTTP.
* Nothing the user has is lost: a file already in place is replaced only by a download that verified
  (``os.replace``); one that did not match its registered hash is kept beside it as
  ``<file>.replaced`` when a verified one takes its place.
* Nothing waits without end or word: each attempt has a ``timeout`` (connecting, and any stretch of that
  many seconds in which less than one 64 KiB block arrives: a server that trickles a byte now and then is
  abandoned), failed attempts are retried (at once after one that brought bytes, else after 1, 2, 4, 8 s), an overall ``deadline`` bounds them all,
  and every attempt after the first is announced on stderr.
* Why not ``pooch`` (the well-kept library for verified downloads): it does not resume a partial file,
  and resuming matters for the 30-50 MB files of this catalogue on slow links; the rest (hash check,
  atomic move) is the few lines above.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover - import only for type hints (avoids an import cycle)
    from .catalogue import DataFile, DatasetSpec

CHUNK = 1 << 16
BASE_URL_ENV = "MULSUPCON_BASE_URL"
SIDECAR_SUFFIX = ".sha256ok"


class DownloadError(OSError):
    """A file could not be fetched (network failure, interrupted transfer, bad server answer)."""


class ChecksumError(DownloadError):
    """A fetched file's size or sha256 differs from the registered value (the file is discarded)."""


class MissingDataError(FileNotFoundError):
    """A dataset file is absent (or corrupt) in the data home and was not (or could not be) fetched."""


# (resolved path, size, mtime_ns) -> sha256 of files already hashed in this process.
_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 64 KiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_url(url: str, rel_path: str | None = None, base_url: str | None = None) -> str:
    """The URL to fetch: ``url``, or ``<base_url>/<rel_path>`` when a mirror is configured.

    Args:
        url: the file's public location.
        rel_path: the file's path inside the data home (e.g. ``"yeast/yeast-train.arff"``).
        base_url: mirror prefix; ``None`` reads ``MULSUPCON_BASE_URL`` (unset or empty: no mirror).
    """
    base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV, "")
    if not base or rel_path is None:
        return url
    return base.rstrip("/") + "/" + urllib.parse.quote(rel_path.replace(os.sep, "/"))


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool):
    """A tqdm bar on stderr; disabled when ``enabled`` is False or stderr is not a terminal."""
    from tqdm import tqdm

    show = enabled and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not show,
        leave=False,
    )


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _verified(path: Path, sha256: str | None, size: int | None) -> tuple[bool, str]:
    """(matches, reason) for a local file against the expected size and hash."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return False, f"size {actual_size} bytes, expected {size}"
    if sha256 is not None:
        found = sha256_file(path)
        if found != sha256.lower():
            return False, f"sha256 {found}, expected {sha256.lower()}"
    return True, ""


def fetch(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30,
    retries: int = 0,
    deadline: float | None = 600,
    force: bool = False,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` and verifying size and sha256.

    An existing ``dest`` whose hash matches is returned without network access (unless ``force``); one
    that does not match is never used, and stays in place until a verified download replaces it (it is
    then kept as ``dest.replaced``). On success the verified file is moved into place atomically
    (``os.replace``). On a hash/size mismatch the download is deleted and :class:`ChecksumError` raised;
    on an interrupted transfer the partial file is kept as ``dest.part`` so that a later call resumes it.

    Args:
        url: where to get the file (http/https/file URL).
        dest: final path of the file.
        sha256: expected hex digest; ``None`` skips the hash check (only for files without one).
        size: expected byte size, or ``None`` when unknown.
        progress: show a tqdm bar on stderr (only when stderr is a terminal).
        timeout: seconds an attempt may wait to connect, or for each 64 KiB block (see the module doc).
        retries: further attempts after a failed one (resuming; after 1, 2, 4, 8 s when nothing arrived).
        deadline: seconds all attempts together may take (None: no limit).
        force: download again even when ``dest`` verifies.

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        DownloadError: network failure, a stalled or interrupted transfer, or the deadline passed (the
            message names the URL, the path and the time spent).
        ChecksumError: the complete download has the wrong size or hash.
    """
    dest = Path(dest)
    if dest.exists() and not force:
        ok, _ = _verified(dest, sha256, size)
        if ok:
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    started = time.monotonic()
    attempt = failures = 0
    while True:
        remaining = None if deadline is None else deadline - (time.monotonic() - started)
        if remaining is not None and remaining <= 0:
            raise DownloadError(f"could not download {url}: gave up after {time.monotonic() - started:.0f} s "
                                f"(deadline {deadline:g} s); partial file kept at {part}; call again to resume")
        had = part.stat().st_size if part.exists() else 0
        try:
            _transfer(url, part, size=size, progress=progress, timeout=min(timeout, remaining or timeout),
                      desc=dest.name)
            break
        except DownloadError as err:
            attempt += 1
            if attempt > retries:
                raise
            # An attempt that brought bytes resumes at once; one that brought nothing waits 1, 2, 4, 8 s.
            grew = (part.stat().st_size if part.exists() else 0) > had
            failures = 0 if grew else failures + 1
            wait = 0.0 if grew else min(2.0 ** (failures - 1), 8.0, max(0.0, (remaining or 60.0) - 0.1))
            print(f"download of {dest.name}: {err}; retrying" + (f" in {wait:.0f} s" if wait else "")
                  + f" (attempt {attempt + 1} of {retries + 1})", file=sys.stderr, flush=True)
            time.sleep(wait)
    ok, reason = _verified(part, sha256, size)
    if not ok:
        _unlink(part)
        raise ChecksumError(
            f"download of {url} is corrupt ({reason}); the file was deleted and not installed at {dest}"
        )
    if dest.exists() and not _verified(dest, sha256, size)[0]:
        os.replace(dest, dest.with_name(dest.name + ".replaced"))  # someone's edited copy: kept aside
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, *, size: int | None, progress: bool, timeout: float, desc: str) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with HTTP Range when ``part`` exists)."""
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > size:
        _unlink(part)  # longer than the real file: cannot be a prefix of it
        start = 0
    if size is not None and start == size:
        return  # complete already; the caller verifies the hash (and deletes it if wrong)
    request = urllib.request.Request(url, headers={"User-Agent": "mulsupcon-downloader"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:
            # Range not satisfiable: our partial file is useless; start over next time.
            _unlink(part)
            raise DownloadError(f"server rejected resume of {url} (HTTP 416); partial file removed, retry") from err
        raise DownloadError(f"could not download {url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"could not download {url}: {reason}") from err

    with response:
        status = getattr(response, "status", None) or response.getcode()
        if start and status != 206:
            start = 0  # the server ignored Range and sends the whole file: restart from byte 0
        mode = "ab" if start else "wb"
        length = response.headers.get("Content-Length")
        expected_now = int(length) if length is not None and length.isdigit() else None
        total = size if size is not None else (start + expected_now if expected_now is not None else None)
        received = 0
        bar = _progress_bar(total, start, desc, progress)
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        block = _read_block(response, timeout)
                    except TimeoutError as err:
                        raise DownloadError(
                            f"transfer of {url} stalled: less than {CHUNK // 1024} KiB in {timeout:g} s after "
                            f"{start + received} bytes; partial file kept at {part}; call again to resume"
                        ) from err
                    except (http.client.IncompleteRead, OSError) as err:
                        raise DownloadError(
                            f"transfer of {url} interrupted after {start + received} bytes ({err}); "
                            f"partial file kept at {part}; call again to resume"
                        ) from err
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
    if expected_now is not None and received < expected_now:
        raise DownloadError(
            f"transfer of {url} interrupted after {start + received} of {start + expected_now} bytes; "
            f"partial file kept at {part}; call again to resume"
        )
    if size is not None and start + received < size:
        raise DownloadError(
            f"transfer of {url} ended after {start + received} of {size} bytes; "
            f"partial file kept at {part}; call again to resume"
        )


def _read_block(response, timeout: float) -> bytes:
    """Up to CHUNK bytes; TimeoutError when a full block (or the end) does not arrive within ``timeout``
    seconds (the socket timeout alone would let a server that trickles a byte now and then go on forever)."""
    deadline = time.monotonic() + timeout
    parts, have = [], 0
    while have < CHUNK:
        piece = response.read1(CHUNK - have) if hasattr(response, "read1") else response.read(CHUNK - have)
        if not piece:
            break
        parts.append(piece)
        have += len(piece)
        if have < CHUNK and time.monotonic() > deadline:
            raise TimeoutError(f"{have} bytes in {timeout:g} s")
    return b"".join(parts)


# ---------------------------------------------------------------------------------- local checks
def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def check_local_file(path: Path, sha256: str | None, size: int | None) -> tuple[bool, str]:
    """Whether a local file matches its registered size/hash, using the sidecar and memo caches.

    Returns ``(True, "")`` or ``(False, reason)``. Never writes anything (see :func:`write_sidecar`).
    """
    st = path.stat()
    if size is not None and st.st_size != size:
        return False, f"size {st.st_size} bytes, expected {size}"
    if sha256 is None:
        return True, ""
    want = sha256.lower()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if _HASH_MEMO.get(key) == want:
        return True, ""
    side = _sidecar(path)
    try:
        rec = json.loads(side.read_text())
        if rec == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": want}:
            _HASH_MEMO[key] = want
            return True, ""
    except (OSError, ValueError):
        pass
    found = sha256_file(path)
    if found != want:
        return False, f"sha256 {found}, expected {want}"
    _HASH_MEMO[key] = want
    return True, ""


def write_sidecar(path: Path, sha256: str) -> None:
    """Record that ``path`` (just downloaded and verified by us) has hash ``sha256``.

    Failures are ignored: the cache only saves time, it must never make a load fail.
    """
    try:
        st = path.stat()
        rec = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256.lower()}
        _sidecar(path).write_text(json.dumps(rec))
        _HASH_MEMO[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = sha256.lower()
    except OSError:
        pass


def _missing_message(spec_name: str, f: "DataFile", path: Path, url: str, home: Path, why: str) -> str:
    size = f"{f.size} bytes" if f.size is not None else "size unknown"
    digest = f"sha256 {f.sha256}" if f.sha256 else "no registered sha256"
    return (
        f"dataset '{spec_name}': {why}\n"
        f"  file:      {f.path}\n"
        f"  put it at: {path}\n"
        f"  get it at: {url}\n"
        f"  ({size}, {digest})\n"
        f"  or run:    mulsupcon datasets download {spec_name}   (Python: download=True)\n"
        f"  data home: {home}  (choose another with MULSUPCON_DATA or data_home=)"
    )


def ensure_files(
    spec: "DatasetSpec",
    data_home: str | Path,
    download: bool = False,
    *,
    base_url: str | None = None,
    progress: bool = True,
    verify: bool = True,
    force: bool = False,
    files: Iterable["DataFile"] | None = None,
    timeout: float = 30,
    retries: int = 2,
    deadline: float | None = 600,
) -> list[Path]:
    """Make sure every file of ``spec`` is present and verified in ``data_home``.

    Args:
        spec: the dataset's registry entry.
        data_home: root folder laid out like ``../shared/data``.
        download: fetch missing or corrupt files (otherwise raise).
        base_url: mirror prefix (see :func:`resolve_url`).
        progress: progress bars while downloading.
        verify: check size/sha256 of present files (lazily cached).
        force: fetch files again even when they verify (implies ``download``); the present file is replaced
            only once the new one verified.
        timeout, retries, deadline: per attempt, further attempts, all attempts together (see :func:`fetch`).
        files: restrict to these entries of ``spec.files``.

    Returns:
        The local paths, in ``spec.files`` order.

    Raises:
        MissingDataError: a file is missing or corrupt and could not be fetched; the message says
            which file to put where, the URL to get it from and the download command.
    """
    home = Path(data_home)
    out: list[Path] = []
    for f in (spec.files if files is None else files):
        path = home / f.path
        url = resolve_url(f.url, f.path, base_url)
        problem = ""
        if path.exists() and not force:
            if not verify:
                out.append(path)
                continue
            ok, reason = check_local_file(path, f.sha256, f.size)
            if ok:
                out.append(path)
                continue
            problem = f"file {f.path} is corrupt ({reason})"
        else:
            problem = f"file {f.path} is missing" if not path.exists() else f"re-download of {f.path} requested"
        if not (download or force):
            if path.exists():
                problem += "; delete it and fetch it again"
            raise MissingDataError(_missing_message(spec.name, f, path, url, home, problem))
        try:
            _unlink(_sidecar(path))
            fetch(url, path, sha256=f.sha256, size=f.size, progress=progress, retries=retries, timeout=timeout,
                  deadline=deadline, force=force)
            if f.sha256:
                write_sidecar(path, f.sha256)
        except (DownloadError, PermissionError, OSError) as err:
            raise MissingDataError(
                _missing_message(spec.name, f, path, url, home, f"{problem} and could not be fetched: {err}")
            ) from err
        out.append(path)
    return out
