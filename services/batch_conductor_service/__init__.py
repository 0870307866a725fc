"""Batch Conductor Service: tells BOS which processing steps an essay batch still needs."""

SERVICE_NAME = "batch_conductor_service"
