"""The argument parser of `bcs`: `--help` and `--version` answer without starting anything."""

import argparse

from batch_conductor_service import service_version

DESCRIPTION = """\
Batch Conductor Service. With no command it serves the HTTP API and consumes the processing
services' events, configured by BCS_* environment variables (see README.md, "Settings")."""

EPILOG = """\
examples:
  bcs                                  run the service
  bcs inspect batch-123                what the running service knows of a batch
  bcs dlq list huleedu.essay.spellcheck.completed.v1
  bcs dlq replay huleedu.essay.spellcheck.completed.v1 --reason invalid_json --dry-run"""


def build_parser() -> argparse.ArgumentParser:
    # Imported here: each subcommand module registers its own arguments and entry point.
    from batch_conductor_service.cli import dlq_commands, inspect_command

    parser = argparse.ArgumentParser(
        prog="bcs",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {service_version()}")
    # No subcommand: run the service. Each subcommand sets its own `run`.
    parser.set_defaults(run=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    inspect_command.register(commands)
    dlq_commands.register(commands)
    return parser
