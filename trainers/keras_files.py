"""``.keras`` files checked before Keras reads them: Keras reports a truncated or garbled file
as "File not found", which sends the user looking in the wrong place."""

import zipfile
import zlib
from pathlib import Path


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
