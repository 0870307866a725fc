"""Batch Conductor Service: tells BOS which processing steps an essay batch still needs."""

from importlib.metadata import PackageNotFoundError, version

SERVICE_NAME = "batch_conductor_service"


def service_version() -> str:
    try:
        return version("huleedu-batch-conductor-service")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"
