"""Shared by the plot scripts: open an sdeflow study file and check its format, or exit 2 with a message."""
import sys

import h5py


def open_study(path, expected_format, program):
    """Returns the open h5py.File, or exits with status 2 naming the problem."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        print(f"{program}: error: cannot open {path}: {e}", file=sys.stderr)
        sys.exit(2)
    fmt = f.attrs.get("format", b"")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != expected_format:
        f.close()
        print(f"{program}: error: {path} is not an {expected_format} file", file=sys.stderr)
        sys.exit(2)
    return f


def text(value):
    """An HDF5 string attribute as str (sdeflow writes fixed-length strings, h5py returns bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
