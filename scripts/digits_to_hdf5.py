#!/usr/bin/env python3
"""Convert scikit-learn's bundled 8x8 digits to sdeflow data files (docs/datasets.md, "Digits").

sklearn.datasets.load_digits() ships with scikit-learn (no download): 1797 grey-scale images of 8x8 pixels
with integer values 0..16. They are split once and for all by a fixed permutation,

    order = numpy.random.default_rng(0).permutation(1797)
    train = order[:1437], test = order[1437:]    (1437 + 360 images)

and written as DIR/digits-train.h5 and DIR/digits-test.h5 (docs/formats.md, "Data files"):

    /data    [N, 1, 8, 8] uint8, values 0..16
    /labels  [N] int64, the digit 0..9
    root attributes: format = "sdeflow.data", version = 1 (int64), name = "digits", split = "train" / "test",
                     value_range = [0, 16] (float64), levels = 17 (int64)

Each file is written under a temporary name in DIR and renamed into place, so it is complete or absent.
The script prints one line per file and, last, two checksums of the whole data set that do not depend on the
order of the images, which the tests recompute from both files (so that train + test is the data set, as a
multiset of images): `pixel_sum S` (the sum of all 1797 * 64 pixel values) and `row_signature R`, the sum over
images of (sum_j (j + 1) x_j)^2 with j = 0..63 the pixel index in row-major order (exact in float64).
"""
import argparse
import os
import sys
import tempfile

import h5py
import numpy as np
from sklearn.datasets import load_digits

N_TRAIN = 1437
LEVELS = 17


def split_indices(n):
    order = np.random.default_rng(0).permutation(n)
    return order[:N_TRAIN], order[N_TRAIN:]


def write_atomically(path, images, labels, split):
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-", dir=directory)
    os.close(handle)
    try:
        with h5py.File(temporary, "w") as f:
            f.create_dataset("data", data=images, compression="gzip", compression_opts=4)
            f.create_dataset("labels", data=labels)
            f.attrs["format"] = "sdeflow.data"
            f.attrs["version"] = np.int64(1)
            f.attrs["name"] = "digits"
            f.attrs["split"] = split
            f.attrs["value_range"] = np.array([0.0, LEVELS - 1.0], dtype=np.float64)
            f.attrs["levels"] = np.int64(LEVELS)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", required=True, help="directory for digits-train.h5 and digits-test.h5")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.out_dir):
        print(f"digits_to_hdf5: error: --out-dir {args.out_dir}: not a directory", file=sys.stderr)
        return 2

    digits = load_digits()
    values = digits.data                       # [1797, 64] float64 holding integers 0..16
    if values.shape != (1797, 64) or values.min() < 0 or values.max() > LEVELS - 1 or np.any(values != np.round(values)):
        print("digits_to_hdf5: error: unexpected content of sklearn's digits", file=sys.stderr)
        return 1
    images = values.astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    train, test = split_indices(len(images))
    for split, index in (("train", train), ("test", test)):
        path = os.path.join(args.out_dir, f"digits-{split}.h5")
        write_atomically(path, images[index], labels[index], split)
        print(f"wrote {path}: {len(index)} images [1, 8, 8] uint8, values 0..{LEVELS - 1}")
    flat = values.astype(np.int64)
    print(f"pixel_sum {int(flat.sum())}")
    print(f"row_signature {int(((flat @ np.arange(1, 65, dtype=np.int64)) ** 2).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
