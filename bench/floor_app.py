"""The HTTP stack's floor: bare Quart on Hypercorn and uvloop, from the same virtual environment
as the service, answering POST /internal/v1/pipelines/define with fixed JSON.

It reads the request body, as the service must, and returns an answer of the service's size for
a batch whose spellcheck is done, without looking at either. Nothing a real request could do
costs less on this stack, so the service's req/s over this app's is the figure that travels
between machines.

    python bench/floor_app.py PORT [REDIS_URL]

With REDIS_URL it is the floor of a service that reads Redis once a request: each request makes
one plain redis-py read and writes one INFO log line (through this project's logging set-up)
before the same answer. The simplification measured BCS against that app (issue 17); bench_http
runs it as a reference row, so its share of the bare floor says what one read and one line
cost on the machine at hand.
"""

import asyncio
import sys

import orjson
import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response, request

ANSWER = orjson.dumps(
    {
        "batch_id": "floor",
        "final_pipeline": ["nlp", "cj_assessment", "ai_feedback"],
        "analysis_summary": (
            "Resolved pipeline 'comprehensive' for batch 'floor'. Pruned spellcheck: all 30 "
            "essays on the roster finished (30 succeeded, 0 failed). Steps to run: nlp, "
            "cj_assessment, ai_feedback."
        ),
        "requested_pipeline": "comprehensive",
        "resolved_as": "pipeline",
        "added_dependencies": [],
        "pruned_steps": [{"step": "spellcheck", "reason": "all 30 essays on the roster finished"}],
        "stages": [["nlp", "cj_assessment"], ["ai_feedback"]],
    }
)

app = Quart("floor")


@app.post("/internal/v1/pipelines/define")
async def define() -> Response:
    await request.get_data()
    return Response(ANSWER, status=200, content_type="application/json")


def with_one_read(redis_url: str) -> Quart:
    """The floor, plus one plain redis-py read and one log line a request."""
    from redis.asyncio import Redis

    from huleedu_service_libs.logging_utils import configure_logging, get_logger

    configure_logging("INFO", "floor")
    logger = get_logger("floor.requests")
    client = Redis.from_url(redis_url, decode_responses=True)
    reading = Quart("floor_with_one_read")

    @reading.post("/internal/v1/pipelines/define")
    async def define_after_a_read() -> Response:
        await request.get_data()
        held = await client.hgetall("bench-floor:{floor}:facts")
        logger.info("http_request", route=request.path, status=200, fields=len(held))
        return Response(ANSWER, status=200, content_type="application/json")

    return reading


def main() -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{int(sys.argv[1])}"]
    config.accesslog = None
    served = with_one_read(sys.argv[2]) if len(sys.argv) > 2 else app
    uvloop.run(serve(served, config, shutdown_trigger=asyncio.Event().wait))


if __name__ == "__main__":
    main()
