"""Writing a project folder without ever losing what sira did not write.

A project folder is the user's too: Vitis puts its solution folder there
(hours of synthesis), people add notes and scripts. So a rebuild replaces
exactly the files the previous build wrote - those its ``manifest.json``
lists with their sha256 (``files``, ``data_files``), the manifest itself and
the files sira refreshes after a build (the C-simulation verdict, the HTML
report) - and leaves everything else in place:

* a folder whose manifest is missing, not sira's, or lists files that are
  gone or were edited since the build is not verifiably sira's: it is
  refused, naming what would be lost, unless ``force`` (then the folder is
  replaced wholesale and the refusal's list is what went);
* the new project is assembled beside the folder and moved in only when
  complete; the move runs with SIGINT and SIGTERM held back, so an
  interruption leaves the old project or the new one, never a mix;
* one build at a time per folder (an advisory lock file beside it while it
  runs): a second concurrent build is refused at once instead of racing
  the first;
* temporary folders a killed build left beside the folder are removed by the
  next build of that folder;
* the destination's parent is checked for writability before any work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from typing import Callable, Iterator, Optional

from ..errors import SiraError
from ..report import GENERATOR, MANIFEST, check_creatable
#: files sira rewrites after the build (``sira csim``, ``sira report``): its own, not hashed
REFRESHED = frozenset({"report/csim.json", "report/report.html"})
#: how many paths an error lists before "and N more"
_SHOWN = 8

_held: set[str] = set()
_held_guard = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Survey:
    """What an existing folder holds, from sira's point of view."""

    #: relative paths of the files the previous build wrote (verified unchanged)
    owned: frozenset[str]
    #: relative paths of files and whole folders sira did not write
    foreign: tuple[str, ...]
    #: files the manifest lists that were edited or removed since the build
    changed: tuple[str, ...]
    #: whether the folder has a manifest of sira's
    is_project: bool


@dataclasses.dataclass(frozen=True)
class Replacement:
    """What writing a project did to the folder's other content."""

    #: paths sira did not write, left in place
    kept: tuple[str, ...] = ()
    #: paths sira did not write (or edited ones), removed because of ``force``
    removed: tuple[str, ...] = ()
    #: the previous build's files, which the new build's replace (when kept is not empty)
    replaced: frozenset[str] = frozenset()


def _listing(paths) -> str:
    paths = sorted(paths)
    shown = ", ".join(paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def read_manifest(path: str) -> Optional[dict]:
    """The folder's manifest if it is sira's (a JSON object naming sira as
    its generator), else None."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and doc.get("generator") == GENERATOR else None


def _listed(manifest: dict) -> dict[str, str]:
    """Relative path -> sha256 of every file the manifest says sira wrote;
    empty when the manifest does not list its files as sira writes them."""
    out: dict[str, str] = {}
    for key in ("files", "data_files"):
        entries = manifest.get(key, {})
        if not isinstance(entries, dict):
            return {}
        for rel, digest in entries.items():
            if not isinstance(rel, str) or not isinstance(digest, str) or rel.startswith("/") or ".." in rel.split("/"):
                return {}
            out[rel] = digest
    return out


def _sha256_file(path: str) -> Optional[str]:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except OSError:
        return None


def survey(path: str) -> Survey:
    """Which files of the folder ``path`` sira wrote and which it did not.
    A folder sira did not write as a whole (a Vitis solution) counts as one
    foreign path and is not descended into."""
    manifest = read_manifest(path)
    listed = _listed(manifest) if manifest else {}
    changed = tuple(sorted(rel for rel, digest in listed.items() if _sha256_file(os.path.join(path, *rel.split("/"))) != digest))
    owned = {rel for rel in listed if rel not in changed}
    if listed:
        owned |= {MANIFEST} | {rel for rel in REFRESHED if os.path.isfile(os.path.join(path, *rel.split("/")))}
    owned_dirs = {"/".join(rel.split("/")[:k]) for rel in owned for k in range(1, rel.count("/") + 1)}
    foreign: list[str] = []
    for folder, dirs, files in os.walk(path):
        rel_folder = os.path.relpath(folder, path).replace(os.sep, "/")
        prefix = "" if rel_folder == "." else rel_folder + "/"
        for d in list(dirs):
            if prefix + d not in owned_dirs or os.path.islink(os.path.join(folder, d)):
                foreign.append(prefix + d + "/")
                dirs.remove(d)
        foreign.extend(prefix + f for f in files if prefix + f not in owned and prefix + f not in changed)
    return Survey(frozenset(owned), tuple(sorted(foreign)), changed, manifest is not None and bool(listed))


def check_writable(dest: str) -> None:
    """Fail now, before any work, if the folder ``dest`` cannot be created,
    replaced, or (when it stays, holding files sira did not write) written."""
    check_creatable(dest)
    if os.path.isdir(dest) and not os.access(dest, os.W_OK | os.X_OK):
        raise SiraError(f"cannot write '{dest}': it is not writable; choose another output folder or fix its permissions")


def plan_replacement(dest: str, force: bool = False) -> Replacement:
    """What replacing the folder ``dest`` would keep or remove; a SiraError
    if it would lose anything sira did not write and ``force`` is off."""
    dest = os.path.abspath(dest)
    check_writable(dest)
    if not os.path.lexists(dest):
        return Replacement()
    if not os.path.isdir(dest) or os.path.islink(dest):
        raise SiraError(f"'{dest}' exists and is not a folder; choose another output folder")
    entries = os.listdir(dest)
    if not entries:
        return Replacement()
    found = survey(dest)
    if not found.is_project:
        if force:
            return Replacement(removed=tuple(sorted(entries)))
        raise SiraError(f"refusing to overwrite '{dest}': it is not a sira project (no manifest.json of sira's listing its "
                        f"files); it holds {_listing(entries)}. Choose another folder, or pass --force to replace it wholesale")  # fmt: skip
    if found.changed and not force:
        raise SiraError(f"refusing to overwrite '{dest}': files sira wrote there were edited or removed since the build "
                        f"({_listing(found.changed)}); save your changes elsewhere, or pass --force to replace them")  # fmt: skip
    if force:
        return Replacement(removed=found.foreign + found.changed)
    return Replacement(kept=found.foreign, replaced=found.owned)


@contextlib.contextmanager
def locked(dest: str) -> Iterator[None]:
    """Hold the folder's build lock (``.<name>.lock`` beside it); re-entrant
    within this process. A second process is refused at once."""
    dest = os.path.abspath(dest)
    with _held_guard:
        if dest in _held:
            reentered = True
        else:
            reentered = False
            _held.add(dest)
    if reentered:
        yield
        return
    fd = None
    lock_path = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.lock")
    try:
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            fd = _acquire(lock_path, dest)
            _remove_stale(dest)
        except OSError as e:
            raise SiraError(f"cannot write '{dest}': {e.strerror}") from None
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(lock_path)  # while still holding it: see _acquire
            os.close(fd)
        with _held_guard:
            _held.discard(dest)


def _acquire(lock_path: str, dest: str) -> int:
    """An exclusive flock on ``lock_path``. The holder deletes the file when
    it is done, so a lock taken on a file that was deleted meanwhile is
    worthless: take it again on the file now at that path."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SiraError(f"another sira build is writing '{dest}' right now; wait for it to finish or choose another folder") from None
        try:
            if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _remove_stale(dest: str) -> None:
    """Temporary folders a build of ``dest`` left when it was killed (the
    lock is held, so no live build owns them)."""
    parent, name = os.path.split(dest)
    for entry in os.listdir(parent):
        if entry.startswith((f".{name}.building-", f".{name}.old-")):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (main thread only:
    elsewhere Python delivers no signals anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _files_under(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/")
                  for folder, _, files in os.walk(root) for f in files)  # fmt: skip


def _move_in(tmp: str, dest: str, owned: frozenset[str], trash: str) -> None:
    """Swap the previous build's files for the new ones inside ``dest``,
    leaving every other file and folder where it is."""
    for rel in sorted(owned):
        src = os.path.join(dest, *rel.split("/"))
        if os.path.lexists(src):
            target = os.path.join(trash, *rel.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(src, target)
    for rel in _files_under(tmp):
        target = os.path.join(dest, *rel.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(tmp, *rel.split("/")), target)
    # the folders only the previous build's files lived in, deepest first
    folders = {"/".join(rel.split("/")[:k]) for rel in owned for k in range(1, rel.count("/") + 1)}
    for rel in sorted(folders, key=lambda f: -f.count("/")):
        folder = os.path.join(dest, *rel.split("/"))
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


def write_folder(dest: str, fill: Callable[[str], None], force: bool = False) -> Replacement:
    """Assemble a project with ``fill(root)`` in a fresh folder beside
    ``dest``, then put it in place (see the module docstring). On any error
    nothing at ``dest`` changes."""
    dest = os.path.abspath(dest)
    with locked(dest):
        plan = plan_replacement(dest, force)
        parent = os.path.dirname(dest)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.building-", dir=parent)
        trash = None
        try:
            fill(tmp)
            os.chmod(tmp, 0o755)
            if plan.kept:
                clash = [rel for rel in _files_under(tmp)
                         if any(rel == k or (k.endswith("/") and rel.startswith(k)) for k in plan.kept)]  # fmt: skip
                if clash:
                    raise SiraError(f"refusing to overwrite '{dest}': the new build writes {_listing(clash)}, which sira did not "
                                    "write there; move those files, or pass --force")  # fmt: skip
            trash = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.old-", dir=parent)
            with _signals_held():
                if plan.kept:
                    _move_in(tmp, dest, plan.replaced, trash)
                elif os.path.lexists(dest):
                    os.rmdir(trash)
                    os.replace(dest, trash)
                    os.replace(tmp, dest)
                else:
                    os.replace(tmp, dest)
        except OSError as e:
            raise SiraError(f"cannot write '{dest}': {e.strerror or e}") from None
        finally:
            for leftover in (tmp, trash):
                if leftover and os.path.lexists(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)
    return plan


__all__ = ["Replacement", "Survey", "check_writable", "locked", "plan_replacement", "read_manifest", "survey", "write_folder"]
