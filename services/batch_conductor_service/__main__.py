"""`bcs` / `python -m batch_conductor_service`: the service, or with a subcommand an operator's
tool (`inspect`, `dlq list`, `dlq replay`)."""

import sys
from collections.abc import Sequence

from batch_conductor_service.cli.commands import build_parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.run is None:
        # Imported only to serve: an operator's command then starts in a quarter of the time.
        from batch_conductor_service.cli.serve import serve_main

        serve_main()
    else:
        sys.exit(args.run(args))


if __name__ == "__main__":
    main()
