"""Datasets: find, download and verify the workshop's radiographs.

Example::

    from minidl.datasets import find_dataset
    data = find_dataset()            # --data / $MINIDL_DATA / cache / download
"""
from minidl.datasets.open_i import (DATASET_NAME, DATASET_URL, DatasetChecksumError,
                                    DatasetUnavailableError, datasets_cache_dir, download_dataset,
                                    find_dataset, load_checksums, looks_like_dataset, verify_dataset)

__all__ = ["DATASET_NAME", "DATASET_URL", "DatasetChecksumError", "DatasetUnavailableError",
           "datasets_cache_dir", "download_dataset", "find_dataset", "load_checksums",
           "looks_like_dataset", "verify_dataset"]
