"""What the application's lifespan sets up for the process that serves it, and gives back."""

import gc

from fastapi import FastAPI
from fastapi.testclient import TestClient

from taskplatform.api.gc_tuning import RAISED_GC_THRESHOLDS


def test_the_app_raises_the_collectors_thresholds_while_it_serves_and_gives_them_back(app: FastAPI) -> None:
    before = gc.get_threshold()
    assert before != RAISED_GC_THRESHOLDS
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold() == RAISED_GC_THRESHOLDS
    assert gc.get_threshold() == before
