"""mleray's wrapper around aideml 0.2.2 (PyPI): MLE-bench's task in, the best submission out, every model
call through mleray's LLM gateway.

- The task: /home/instructions.txt (MLE-bench's instructions), the competition's /home/data/description.md
  and the time limit, in one description file; the data is /home/data (linked, not copied: copy_data=False).
- The models: `AIDE_MODEL` (code), `AIDE_FEEDBACK_MODEL` (reviews), `AIDE_STEPS`, any other aide option as a
  `key=value` argument. aideml sends gpt-*/o* names to a hard-coded public endpoint whatever
  OPENAI_BASE_URL says, and other names to OpenRouter or Gemini: every OpenAI and Anthropic client it makes is
  pointed at the gateway (OPENAI_BASE_URL / ANTHROPIC_BASE_URL) here, so no name leaves the sandbox's
  only route (it has no network anyway: a missed client would fail, not leak).
- The output: after each step, when the newest node is the best good one so far, its
  ./working/submission.csv is copied to /home/submission/submission.csv (atomically) and its code to
  /home/code/best_solution.py, so mleray's snapshots follow the best solution as it improves.
- The clock: steps stop when the time left (MLERAY_TIME_LIMIT, or TIME_LIMIT_SECS) cannot fit another;
  one script may run at most a third of the limit (exec.timeout).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

START = time.monotonic()
SUBMISSION = Path(os.environ.get("SUBMISSION_DIR", "/home/submission")) / "submission.csv"
CODE_DIR = Path(os.environ.get("CODE_DIR", "/home/code"))
LOGS_DIR = Path(os.environ.get("LOGS_DIR", "/home/logs"))


def say(text: str) -> None:
    print(f"[mleray-aide] {text}", flush=True)


def route_through_gateway() -> None:
    """Every OpenAI / Anthropic client aideml creates goes to the gateway, whatever base_url it names."""
    import anthropic
    import openai

    openai_url, anthropic_url = os.environ.get("OPENAI_BASE_URL"), os.environ.get("ANTHROPIC_BASE_URL")
    if not openai_url:
        raise SystemExit("mleray-aide: OPENAI_BASE_URL is not set (run with llm: true so mleray's gateway is there)")
    openai_init, anthropic_init = openai.OpenAI.__init__, anthropic.Anthropic.__init__

    def openai_client(self, *args, **kwargs):
        kwargs["base_url"] = openai_url
        kwargs["api_key"] = os.environ.get("OPENAI_API_KEY", "")
        openai_init(self, *args, **kwargs)

    def anthropic_client(self, *args, **kwargs):
        kwargs["base_url"] = anthropic_url or openai_url.rsplit("/v1", 1)[0]
        kwargs["api_key"] = os.environ.get("ANTHROPIC_API_KEY", "")
        anthropic_init(self, *args, **kwargs)

    openai.OpenAI.__init__ = openai_client
    anthropic.Anthropic.__init__ = anthropic_client
    import aide.backend.backend_anthropic as backend_anthropic
    import aide.backend.backend_openai as backend_openai

    backend_openai.OPENAI_BASE_URL = openai_url  # the constant aideml's gpt-*/o* client is built with
    for module in (backend_openai, backend_anthropic):
        module.backoff_create = _stop_at_budget(module.backoff_create)


class BudgetExhausted(RuntimeError):
    """The gateway said this trial's LLM budget ran out: no retry will help."""


def _stop_at_budget(backoff_create):
    """aideml retries a 429 forever; the gateway's budget 429 is raised instead (the step loop stops)."""

    def create(create_fn, retry_exceptions, *args, **kwargs):
        def guarded(*a, **kw):
            try:
                return create_fn(*a, **kw)
            except Exception as err:
                if "LLM budget ran out" in str(err):
                    raise BudgetExhausted(str(err)[:300]) from None
                raise

        return backoff_create(guarded, retry_exceptions, *args, **kwargs)

    return create


def time_limit() -> float:
    for name in ("MLERAY_TIME_LIMIT", "TIME_LIMIT_SECS"):
        try:
            return float(os.environ[name])
        except (KeyError, ValueError):
            continue
    return 24 * 3600.0


def task_description(limit: float, work: Path) -> Path:
    parts = []
    for path in (Path("/home/instructions.txt"), Path("/home/data/description.md")):
        if path.is_file():
            parts.append(path.read_text(errors="replace"))
    hours = limit / 3600
    parts.append(f"You have {hours:.2f} hours ({int(limit)} seconds) in total for this task.")
    desc = work / "task.md"
    desc.write_text("\n\n".join(parts))
    return desc


def keep_best(journal, workspace: Path, kept: list) -> None:
    """Copies the newest node's submission and code out when it is the best good node so far."""
    best = journal.get_best_node(only_good=True)
    if best is None or best is not journal.nodes[-1] or (kept and kept[-1] == best.id):
        return
    made = workspace / "working" / "submission.csv"
    if not made.is_file():
        say(f"step {len(journal)}: best node {best.id[:8]} wrote no ./working/submission.csv")
        return
    SUBMISSION.parent.mkdir(parents=True, exist_ok=True)
    tmp = SUBMISSION.with_name(".submission.csv.tmp")
    shutil.copyfile(made, tmp)
    os.replace(tmp, SUBMISSION)
    (CODE_DIR / "best_solution.py").write_text(best.code)
    kept.append(best.id)
    say(f"step {len(journal)}: new best (metric {best.metric.value}) -> {SUBMISSION}")


def main(argv: list) -> int:
    route_through_gateway()
    from aide.agent import Agent
    from aide.interpreter import Interpreter
    from aide.journal import Journal
    from aide.utils.config import _load_cfg, load_task_desc, prep_agent_workspace, prep_cfg
    from omegaconf import OmegaConf

    limit = time_limit()
    work = CODE_DIR / "aide"
    work.mkdir(parents=True, exist_ok=True)
    options = {
        "data_dir": "/home/data", "desc_file": str(task_description(limit, work)), "exp_name": "mleray",
        "log_dir": str(LOGS_DIR / "aide"), "workspace_dir": str(work / "workspaces"), "copy_data": False,
        "generate_report": False, "agent.steps": int(os.environ.get("AIDE_STEPS", "20")),
        "agent.code.model": os.environ.get("AIDE_MODEL", "o4-mini"),
        "agent.feedback.model": os.environ.get("AIDE_FEEDBACK_MODEL", "gpt-4.1-mini"),
        "exec.timeout": int(max(30, limit / 3)),
    }
    dotlist = [f"{k}={v}" for k, v in options.items()] + [a for a in argv if "=" in a]
    cfg = prep_cfg(OmegaConf.merge(_load_cfg(use_cli_args=False), OmegaConf.from_dotlist(dotlist)))
    say(f"aide: code model {cfg.agent.code.model}, feedback model {cfg.agent.feedback.model}, "
        f"{cfg.agent.steps} steps, time limit {int(limit)} s, models through {os.environ['OPENAI_BASE_URL']}")
    task = load_task_desc(cfg)
    prep_agent_workspace(cfg)
    journal = Journal()
    agent = Agent(task_desc=task, cfg=cfg, journal=journal)
    interpreter = Interpreter(cfg.workspace_dir, **OmegaConf.to_container(cfg.exec))  # type: ignore[arg-type]
    kept: list = []
    longest = 0.0
    try:
        while len(journal) < cfg.agent.steps:
            left = limit - (time.monotonic() - START)
            if left < max(30.0, 1.2 * longest):
                say(f"stopping after {len(journal)} steps: {int(left)} s left")
                break
            t0 = time.monotonic()
            try:
                agent.step(exec_callback=lambda code, reset=True: interpreter.run(code, reset))
            except Exception as err:  # an LLM error (the budget's 429 among them): say it, and stop asking
                say(f"step {len(journal) + 1} failed: {type(err).__name__}: {str(err)[:300]}")
                break
            longest = max(longest, time.monotonic() - t0)
            node = journal.nodes[-1]
            say(f"step {len(journal)}: buggy={node.is_buggy} metric={node.metric.value}")
            keep_best(journal, cfg.workspace_dir, kept)
    finally:
        interpreter.cleanup_session()
    say(f"done: {len(journal)} steps, {len(kept)} submissions kept")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
