"""Fixtures of the reliability tests."""
import os

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope='session')
def png_root(tmp_path_factory) -> str:
    """A CustomDataset folder: 2 classes x 8 random 16x16 PNG images."""
    root = tmp_path_factory.mktemp('png_tree')
    rng = np.random.default_rng(0)
    for cls in ('a', 'b'):
        os.makedirs(root / cls)
        for i in range(8):
            img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f'{i}.png')
    return str(root)
