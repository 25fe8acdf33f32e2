"""One way for every config dataclass to go to and from JSON (style.md: configs are plain data)."""

import dataclasses
import json
from pathlib import Path


class JsonConfig:
    """Mixin for ``@dataclass`` configs: JSON round-trip that refuses unknown keys, and an
    atomic ``save`` so a run killed while saving never leaves half a config behind."""

    def to_json(self) -> str:
        """Every field as sorted, indented JSON: the exact config a run folder records."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        """The config from its JSON; unknown keys are refused, not silently dropped."""
        data = json.loads(text)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown config keys {sorted(unknown)} for {cls.__name__}.")
        return cls(**data)

    def save(self, path) -> None:
        """Write the JSON to ``path`` atomically (temporary file, then rename)."""
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(self.to_json() + "\n")
        temporary.replace(path)

    @classmethod
    def load(cls, path):
        """The config saved at ``path``."""
        return cls.from_json(Path(path).read_text())
