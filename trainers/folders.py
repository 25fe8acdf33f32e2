"""Output folders checked before any work: a run, an analysis or a sweep that can only fail at
its end because of where it writes should fail at its start instead."""

import tempfile
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
