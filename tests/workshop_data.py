"""A tiny stand-in for the workshop's data folder, for tests that must not need ../shared."""
import numpy as np
from PIL import Image

CLASS_LEVELS = (("openI_CXR", 60), ("openI_abd_xray", 190))     # dark "chest", bright "abdomen"


def make_tiny_workshop_data(root, train_per_class=5, val_per_class=3, seed=0):
    """TRAIN/ and VAL/ with one folder per class (noise images of varied sizes) and a flat TEST/."""
    rng = np.random.default_rng(seed)
    for split, count in (("TRAIN", train_per_class), ("VAL", val_per_class)):
        for folder_name, level in CLASS_LEVELS:
            target = root / split / folder_name
            target.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(level, 30, (30 + i, 26, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(target / f"img{i}.png")
    (root / "TEST").mkdir(parents=True)
    for name, level in (("chest2.png", 60), ("abd2.png", 190)):
        Image.fromarray(np.full((40, 33, 3), level, np.uint8)).save(root / "TEST" / name)
    return root
