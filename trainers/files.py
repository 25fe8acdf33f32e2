"""Checks on the files and folders a command reads or writes, made before any work.

A run, an analysis or a sweep that can only fail at its end because of where it writes should
fail at its start instead; and Keras reports a truncated or garbled ``.keras`` file as "File not
found", which sends the user looking in the wrong place, so its archive is checked first.
"""

import tempfile
import zipfile
import zlib
from pathlib import Path


def check_writable_folder(folder: Path, flag: str = "--out") -> None:
    """``folder`` must be a folder this process can create and write in, checked without
    creating it: its nearest existing ancestor (or itself) must be a folder that takes a file.
    A ``ValueError`` names the flag, the blocking path and what to do."""
    folder = Path(folder)
    for path in (folder, *folder.absolute().parents):
        if path.is_symlink() and not path.exists():  # nothing can be made through it
            raise ValueError(f"{flag} {folder}: {path} is a symbolic link that leads nowhere "
                             f"(a symlink loop or a missing target); fix or remove the link, "
                             f"or choose another folder.")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{flag} {folder}: {existing} is a file, not a folder; choose a folder.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ValueError(f"{flag} {folder} cannot be written ({error.strerror} in {existing}); "
                         f"choose a folder you can write in.") from None


def keras_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole zip archive (a ``.keras`` file is one), or ``None``:
    reading every member (``testzip`` checks their CRCs) names the real fault."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        return f"{type(error).__name__}: {error}"
    return None if damaged is None else f"member {damaged} fails its CRC check"


def check_keras_file(path: Path) -> None:
    """A ``ValueError`` naming ``path`` and its fault when it is not a readable ``.keras``."""
    problem = keras_file_problem(path)
    if problem is not None:
        raise ValueError(f"{path} is a corrupt or unreadable .keras file ({problem}); save or "
                         f"copy it again.")
