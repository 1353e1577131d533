"""Command line: `python -m parsers FILE [--json] [--reply-text]`."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    """Print the parse of FILE as JSON, or the reply text of a .txt/.html/.eml file."""
    ap = argparse.ArgumentParser(prog="python -m parsers", description=__doc__)
    ap.add_argument("file")
    ap.add_argument("--json", action="store_true", help="print parse_email(...).as_json()")
    ap.add_argument("--reply-text", action="store_true", help="print the reply text only")
    args = ap.parse_args(argv)
    if args.reply_text:
        from parsers.quotes import reply_text_of_file

        sys.stdout.write(reply_text_of_file(args.file) + "\n")
        return 0
    from parsers.email import parse_file_json

    data = parse_file_json(args.file)
    if args.json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
