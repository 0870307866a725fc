"""The HTTP stack's floor: bare Quart on Hypercorn and uvloop, from the same virtual environment
as the service, answering POST /internal/v1/pipelines/define with fixed JSON.

It reads the request body, as the service must, and returns an answer of the service's size for
a batch whose spellcheck is done, without looking at either. Nothing a real request could do
costs less on this stack, so the service's req/s over this app's is the figure that travels
between machines.

    python bench/floor_app.py PORT
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


def main() -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{int(sys.argv[1])}"]
    config.accesslog = None
    uvloop.run(serve(app, config, shutdown_trigger=asyncio.Event().wait))


if __name__ == "__main__":
    main()
