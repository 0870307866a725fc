"""Utilities every HuleEdu service uses: structured logging and HTTP metrics."""
