"""Loading models safely: only the Keras v3 format, with safe_mode on and the recorded sha256 checked."""
from __future__ import annotations

from pathlib import Path

from biolens.errors import InputError
from biolens.runs import sha256_file

UNSAFE_SUFFIXES = {".h5", ".hdf5", ".pkl", ".pickle", ".joblib", ".pb"}


def register_layers() -> None:
    """Import the modules whose layers biolens registers with Keras, so any biolens model file can be read back
    (a run resumed in a fresh process builds no model before loading its checkpoint)."""
    import biolens.models.contrastive  # noqa: F401
    import biolens.models.image  # noqa: F401
    import biolens.models.objects  # noqa: F401
    import biolens.models.sequence  # noqa: F401


def load_checkpoint(path: Path | str):
    """A training checkpoint written by this run, with its optimizer state, to resume from."""
    import keras

    register_layers()
    return keras.saving.load_model(path, safe_mode=True)


def load_trusted(path: Path | str, expected_sha256: str | None = None):
    """Load a `.keras` model with `safe_mode=True`; refuse other formats and files that were altered."""
    import keras

    register_layers()
    path = Path(path)
    if path.suffix.lower() in UNSAFE_SUFFIXES or path.suffix.lower() != ".keras":
        raise InputError(f"{path}: refusing to load a '{path.suffix}' model file; legacy HDF5 and pickle files can "
                         "run arbitrary code. biolens loads only .keras files written by biolens.")
    if not path.exists():
        raise InputError(f"{path} not found; the run may not have finished. Resume it with biolens train --resume.")
    if expected_sha256 and sha256_file(path) != expected_sha256:
        raise InputError(f"{path}: sha256 differs from the one recorded in run.json; the model file was changed "
                         "or damaged. Re-run training or restore the original file.")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except (ValueError, OSError, KeyError) as error:  # not a Keras zip, or one cut short
        raise InputError(f"{path} cannot be loaded as a model ({str(error).splitlines()[0]}); the file is damaged. "
                         "Re-run training or restore the original file.") from None
