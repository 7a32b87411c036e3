import pytest

from timbre_transfer.data.prepare import PrepareOptions, prepare
from timbre_transfer.data.synthetic import write_paired_dataset


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory):
    """3 paired synthetic domains x 4 clips x 1.5 s, prepared (one validation clip per domain)."""
    root = tmp_path_factory.mktemp("synth")
    write_paired_dataset(root / "audio", n_domains=3, n_clips=4, seconds=1.5)
    prepare(root / "audio", root / "store", options=PrepareOptions(val_fraction=0.25),
            workers=1, progress=False)
    return root
