"""Contracts shared by HuleEdu services: event envelopes, payloads, topics and status values."""
