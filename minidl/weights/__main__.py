"""Command line for weight files.

    python -m minidl.weights convert SRC.h5 DST.h5 [--md5 MD5]
    python -m minidl.weights fetch inception_v3 [--include-top] [--cache-dir D] [--no-progress]
    python -m minidl.weights info FILE.h5

``convert`` turns a Keras legacy HDF5 file into minidl's format (md5 of known
files checked, atomic write). ``fetch`` fills the cache that
``InceptionV3(weights='imagenet')`` uses. ``info`` lists a file's layers.
Errors print one clear message and exit with status 1.

The command line works on files only and never builds a model, so it does not
compare shapes with an architecture; the md5 already proves that an official
file is the one Keras published, and ``model.load_weights`` checks every
shape when the file is loaded.
"""
import argparse
import sys

from minidl.weights.convert import convert
from minidl.weights.download import fetch_weights
from minidl.weights.reading import read_weights_file


def _info(path):
    file_format, layers = read_weights_file(path)
    weighted = [layer for layer in layers if layer.weights]
    numbers = sum(int(array.size) for layer in weighted for array in layer.arrays)
    print(f"{path}: {file_format} format, {len(layers)} layers, {len(weighted)} with weights, "
          f"{sum(len(layer.weights) for layer in weighted)} arrays, {numbers:,} numbers")
    for layer in weighted:
        shapes = ", ".join(f"{name} {tuple(array.shape)}" for name, array in layer.weights)
        print(f"  {layer.name}: {shapes}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minidl.weights", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    convert_parser = commands.add_parser("convert", help="Keras legacy HDF5 -> minidl format")
    convert_parser.add_argument("source")
    convert_parser.add_argument("destination")
    convert_parser.add_argument("--md5", default=None, help="required md5 of the source file")
    # Accepted so that older commands still run; the command line never builds a
    # model, so there is no architecture check to switch off.
    convert_parser.add_argument("--no-architecture-check", action="store_true", help=argparse.SUPPRESS)

    fetch_parser = commands.add_parser("fetch", help="download, verify, convert and cache weights")
    fetch_parser.add_argument("name", choices=["inception_v3"])
    fetch_parser.add_argument("--include-top", action="store_true")
    fetch_parser.add_argument("--cache-dir", default=None)
    fetch_parser.add_argument("--no-progress", action="store_true")

    info_parser = commands.add_parser("info", help="list the layers and shapes of a weights file")
    info_parser.add_argument("path")

    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "convert":
            result = convert(arguments.source, arguments.destination, expected_md5=arguments.md5)
            print(result)
        elif arguments.command == "fetch":
            path = fetch_weights(arguments.name, include_top=arguments.include_top,
                                 cache_dir=arguments.cache_dir, progress=not arguments.no_progress)
            print(path)
        else:
            _info(arguments.path)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
