"""The worker's Celery app is built from the settings its entry point passes, not from the
process environment, and carries every job kind's task."""

from __future__ import annotations

import pytest

from orisel.ablation.spec import CHUNK_TASK, INVARIANCE_TASK, SWEEP_TASK
from orisel.control.celery_app import job_task, make_worker_app
from orisel.extraction.spec import EXTRACT_TASK
from orisel.pipeline.spec import ADVANCE_TASK
from orisel.runtime.settings import Settings
from orisel.scoring.spec import SCORE_TASK
from orisel.training.spec import POPULATION_TASK, SEGMENT_TASK


def test_the_worker_app_uses_the_settings_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORISEL_BROKER_URL", "redis://127.0.0.1:1/9")
    settings = Settings(broker_url="memory://", broker_prefix="given:")
    app = make_worker_app(settings)
    assert app.conf.broker_url == "memory://"
    assert app.conf.broker_transport_options["global_keyprefix"] == "given:"
    kinds = {
        SEGMENT_TASK,
        POPULATION_TASK,
        EXTRACT_TASK,
        SCORE_TASK,
        SWEEP_TASK,
        CHUNK_TASK,
        INVARIANCE_TASK,
        ADVANCE_TASK,
    }
    assert kinds <= set(app.tasks)
    assert all(app.tasks[k].name == k for k in kinds)


def test_a_task_name_has_one_body() -> None:
    def body(run: object, settings: Settings) -> None:
        pass

    with pytest.raises(RuntimeError, match=SCORE_TASK):
        job_task(SCORE_TASK)(body)
