"""Vectors embedded by a build that has not finished, saved in chunks as it goes, so that a
killed build of a large archive resumes where it stopped instead of embedding everything again.
Vectors are keyed by a hash of the passage text and kept only for the embedder that made them."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

CHUNK = 512  # passages embedded between two saves: at ~30 passages/s, one save every ~15 s


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCheckpoint:
    def __init__(self, folder: Path, embedder_fingerprint: str):
        self.folder = Path(folder)
        self.fingerprint = embedder_fingerprint

    def load(self) -> dict[str, np.ndarray]:
        """text key -> vector, from every chunk saved for this embedder (others are dropped)."""
        if not self._made_by_this_embedder():
            self.clear()
            return {}
        vectors = {}
        for chunk in sorted(self.folder.glob("chunk-*.npz")):
            try:
                with np.load(chunk) as data:
                    keys, rows = data["keys"].tolist(), data["vectors"]
                if rows.ndim != 2 or len(rows) != len(keys):
                    raise ValueError("keys and vectors disagree")
                vectors.update(zip(keys, rows))
            except Exception:  # noqa: BLE001 - numpy and zipfile raise many types; any damaged chunk is embedded again
                chunk.unlink(missing_ok=True)
        return vectors

    def _made_by_this_embedder(self) -> bool:
        owner = self.folder / "embedder"
        try:
            return owner.is_file() and owner.read_text(encoding="utf-8") == self.fingerprint
        except (OSError, UnicodeDecodeError):  # damaged or unreadable: its vectors are not to be trusted
            return False

    def saved(self) -> int:
        """How many passages the saved chunks hold (a stopped build's line says whether it kept any):
        none when another embedder made them (the next build drops them)."""
        if not self._made_by_this_embedder():
            return 0
        count = 0
        for chunk in self.folder.glob("chunk-*.npz"):
            try:
                with np.load(chunk) as data:
                    count += len(data["keys"])
            except Exception:  # noqa: BLE001 - as in load: a damaged chunk holds nothing that will be used
                pass
        return count

    def save_chunk(self, keys: list[str], vectors: np.ndarray) -> None:
        """One chunk, written under a temporary name, flushed and renamed into place. Saving is
        best effort: a build that cannot save (another build just finished and emptied the
        folder, a full disk) goes on, and would only embed more if it were stopped."""
        tmp = self.folder / f"tmp-{os.getpid()}.npz"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            owner = self.folder / "embedder"
            if not owner.is_file():
                owner.write_text(self.fingerprint, encoding="utf-8")
            with tmp.open("wb") as f:
                np.savez(f, keys=np.array(keys), vectors=vectors)
                f.flush()
                os.fsync(f.fileno())
            number = len(list(self.folder.glob("chunk-*.npz")))
            os.replace(tmp, self.folder / f"chunk-{number:06d}-{os.getpid()}.npz")
        except OSError:
            tmp.unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
