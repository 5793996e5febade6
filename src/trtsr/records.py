"""JSON records that travel beside the file they describe (the export spec, the engine metadata).

One load/save path: a missing file, invalid JSON, a non-object or missing fields each end in
one line naming the file; unknown keys (from a newer trtsr) are ignored.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from trtsr.errors import TrtsrError
from trtsr.files import write_text_atomic
from trtsr.sizes import SizeRequirements

Record = TypeVar("Record", bound="JsonRecord")


class JsonRecord:
    """Base of a frozen dataclass saved as JSON. Subclasses name themselves and say how a user gets one."""

    what: ClassVar[str] = "record"
    not_found_hint: ClassVar[str] = ""
    missing_hint: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    def save(self, path: str | Path) -> Path:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return Path(path)

    @classmethod
    def load(cls: type[Record], path: str | Path) -> Record:
        path = Path(path)
        if not path.is_file():
            raise TrtsrError(f"{cls.what} not found{cls.not_found_hint}", path=path)
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TrtsrError(f"{cls.what} is not valid JSON ({exc})", path=path) from None
        return cls.from_dict(data, path=path)

    @classmethod
    def from_dict(cls: type[Record], data: Any, *, path: str | Path | None = None) -> Record:
        if not isinstance(data, dict):
            raise TrtsrError(f"{cls.what} is not a JSON object", path=path)
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        required = {f.name for f in fields
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise TrtsrError(f"{cls.what} lacks {', '.join(missing)}{cls.missing_hint}", path=path)
        names = {f.name for f in fields}
        record = cls(**{k: v for k, v in data.items() if k in names})
        record.check(path)
        return record

    def check(self, path: str | Path | None) -> None:
        """Validate field values after loading; raise TrtsrError naming `path`."""


class SizeRules:
    """For records that carry a graph's size rules as scale, alignment, extra_pixels and max_input_size."""

    @property
    def sizes(self) -> SizeRequirements:
        return SizeRequirements(self.scale, self.alignment, self.extra_pixels, self.max_input_size,  # type: ignore
                                self.min_input_size)  # type: ignore
