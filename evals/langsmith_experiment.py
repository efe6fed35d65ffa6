"""Keeping an evaluation run as a LangSmith experiment (``gpudoc eval --langsmith``).

Why LangSmith: teams already compare models and prompts there. The mapping is LangSmith's own:
the suite is a **dataset** (one example per case: its questions and scenarios as inputs, its
expectations as reference outputs), each run is an **experiment** (a project tied to the dataset,
with the model, sampling and recording as metadata), each case is a traced **run** linked to its
example, with the agent's own LangChain/LangGraph runs nested under it, and gpudoc's judge-free
scores are **feedback** on that run (one key per check, plus ``gpudoc.passed`` and ``gpudoc.score``;
the optional judge as ``judge.score``). Every run carries ``thread_id``, ``source`` and
``scenario`` as metadata, and the nested runs inherit them.

Where: the SDK's usual settings (``LANGSMITH_ENDPOINT``, ``LANGSMITH_API_KEY``), or
``--langsmith-endpoint``. Any LangSmith-compatible server works, including a self-hosted one.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from langsmith import Client, trace, tracing_context
from langsmith.utils import LangSmithError

from gpudoc.evals.cases import EvalCase
from gpudoc.evals.results import CaseOutcome, EvalRun

DEFAULT_DATASET = "gpudoc-eval"


class LangSmithUnavailable(RuntimeError):
    """The LangSmith endpoint refused or could not be reached; the message says which and where."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "model"


def example_id(dataset_id: Any, case_id: str) -> uuid.UUID:
    """A stable example id per dataset and case, so re-uploading the suite updates instead of duplicating."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"gpudoc-eval/{dataset_id}/{case_id}")


def _example(case: EvalCase, dataset_id: Any) -> dict[str, Any]:
    return {
        "id": example_id(dataset_id, case.id),
        "inputs": {"questions": case.questions, "scenarios": case.scenarios, "seed": case.seed,
                   "nodes": case.nodes, "gpu_model": case.gpu_model},
        "outputs": {"expect": [turn.expect.model_dump(mode="json", exclude_defaults=True) for turn in case.turns]},
        "metadata": {"case": case.id, "tags": case.tags, "file": case.file, "scenario_names": case.scenario_names},
    }


class LangSmithExperiment:
    """One experiment over the suite's dataset; implements the runner's ``CaseTracer``."""

    def __init__(self, client: Client, *, dataset_id: Any, project_name: str, project_id: Any) -> None:
        self.client = client
        self.dataset_id = dataset_id
        self.project_name = project_name
        self.project_id = project_id
        self._finished: list[tuple[Any, CaseOutcome]] = []

    @property
    def api_url(self) -> str:
        return self.client.api_url

    @property
    def api_origin(self) -> str:
        """``scheme://host:port`` of the endpoint (requests to it are never recorded as cassettes)."""
        parts = urlsplit(self.client.api_url)
        return f"{parts.scheme}://{parts.netloc}"

    @classmethod
    def start(cls, suite: Sequence[EvalCase], *, model: str, run_metadata: dict[str, Any],
              dataset_name: str = DEFAULT_DATASET, experiment_prefix: str = "gpudoc-eval",
              api_url: str | None = None, api_key: str | None = None) -> "LangSmithExperiment":
        """Upsert the suite as the dataset and open the experiment; fails fast if LangSmith is not there."""
        client = Client(api_url=api_url, api_key=api_key)
        try:
            if client.has_dataset(dataset_name=dataset_name):
                dataset = client.read_dataset(dataset_name=dataset_name)
            else:
                dataset = client.create_dataset(
                    dataset_name, description="gpudoc evaluation suite: operator questions over simulated GPU "
                                              "clusters with injected faults (evals/suite/*.yaml)")
            cls._upsert_examples(client, dataset.id, suite)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            name = f"{experiment_prefix}-{_slug(model)}-{stamp}"
            project = client.create_project(name, reference_dataset_id=dataset.id, metadata=run_metadata,
                                            description=f"gpudoc eval of {model}")
        except (LangSmithError, OSError) as exc:
            raise LangSmithUnavailable(f"LangSmith at {client.api_url} failed: {str(exc)[:300]}") from None
        return cls(client, dataset_id=dataset.id, project_name=project.name, project_id=project.id)

    @staticmethod
    def _upsert_examples(client: Client, dataset_id: Any, suite: Sequence[EvalCase]) -> None:
        existing = {str(e.id): e for e in client.list_examples(dataset_id=dataset_id)}
        wanted = [_example(case, dataset_id) for case in suite]
        new = [e for e in wanted if str(e["id"]) not in existing]
        changed = [e for e in wanted if str(e["id"]) in existing
                   and (existing[str(e["id"])].inputs != e["inputs"] or existing[str(e["id"])].outputs != e["outputs"])]
        if new:
            client.create_examples(dataset_id=dataset_id, examples=[
                {**{k: v for k, v in e.items() if k != "outputs"}, "reference_outputs": e["outputs"]} for e in new])
        if changed:
            client.update_examples(dataset_id=dataset_id, updates=changed)

    # -- the runner's CaseTracer --------------------------------------------------------------
    @contextlib.contextmanager
    def case(self, case: EvalCase, metadata: dict[str, Any]) -> Iterator[Any]:
        inputs = {"questions": case.questions, "scenarios": case.scenarios}
        with tracing_context(enabled=True, client=self.client, project_name=self.project_name, metadata=metadata):
            with trace(case.id, "chain", inputs=inputs, project_name=self.project_name, client=self.client,
                       reference_example_id=example_id(self.dataset_id, case.id), metadata=metadata,
                       tags=case.tags) as run:
                yield run

    def finish_case(self, handle: Any, outcome: CaseOutcome) -> None:
        if handle is None:
            return
        handle.end(outputs={"answers": [t.answer for t in outcome.turns], "passed": outcome.passed,
                            "scores": outcome.scores, "score": outcome.score}, error=outcome.error)
        self._finished.append((handle, outcome))

    def close(self, result: EvalRun) -> None:
        """Send the runs, then gpudoc's scores as feedback on them, then close the experiment."""
        self.client.flush()
        for run, outcome in self._finished:
            self._feedback(run, outcome)
        summary = result.summary
        self.client.update_project(self.project_id, end_time=datetime.now(timezone.utc), metadata={
            **result.run.model_dump(mode="json", include={"mode", "model", "recording", "answers_from", "test_double",
                                                          "sampling"}),
            "pass_rate": summary.pass_rate, "cases": summary.cases, "passed": summary.passed,
        })
        self.client.flush()

    def _feedback(self, run: Any, outcome: CaseOutcome) -> None:
        def send(key: str, score: float, comment: str = "") -> None:
            self.client.create_feedback(run.id, key, score=score, comment=comment or None, trace_id=run.trace_id,
                                        session_id=self.project_id)

        send("gpudoc.passed", float(outcome.passed), outcome.error or "")
        send("gpudoc.score", outcome.score)
        for check, passed in outcome.scores.items():
            if passed is not None:
                details = "; ".join(c.detail for t in outcome.turns for c in t.checks if c.name == check and c.detail)
                send(f"gpudoc.{check}", float(passed), details[:1000])
        grades = [t.judge for t in outcome.turns if t.judge is not None and t.judge.score is not None]
        if grades:
            send("judge.score", sum(g.score or 0 for g in grades) / len(grades) / 5,
                 " | ".join(g.reason for g in grades)[:1000])
