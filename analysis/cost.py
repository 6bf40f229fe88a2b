"""Cost: CPU-hours and GPU-hours per trial (requested share × agent time), and for LLM agents tokens and
dollars (the record's llm_* fields, counted by mleray's gateway), per group and per medal."""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import pandas as pd

from .tables import group_keys


def with_cost(df: pd.DataFrame) -> pd.DataFrame:
    """The frame plus cpu_hours = cpus × agent_s / 3600, gpu_hours = gpus × agent_s / 3600 and
    wall_hours = (staging_s + agent_s + grading_s) / 3600."""
    out = df.copy()
    out["cpu_hours"] = out["cpus"] * out["agent_s"] / 3600.0
    out["gpu_hours"] = out["gpus"] * out["agent_s"] / 3600.0
    out["wall_hours"] = (out["staging_s"] + out["agent_s"] + out["grading_s"]) / 3600.0
    return out


def cost_table(df: pd.DataFrame, by: Optional[List[str]] = None) -> pd.DataFrame:
    """Per group: trials, medals, total and per-trial CPU/GPU/wall hours, CPU- and GPU-hours per
    medal (NaN where no medal was won)."""
    by = by or group_keys(df)
    d = with_cost(df)
    g = d.groupby(by, sort=True)
    out = g.agg(trials=("competition_id", "size"), medals=("any_medal", "sum"),
                cpu_hours=("cpu_hours", "sum"), gpu_hours=("gpu_hours", "sum"),
                wall_hours=("wall_hours", "sum")).reset_index()
    out["medals"] = out["medals"].astype(int)
    out["cpu_hours_per_trial"] = out["cpu_hours"] / out["trials"]
    out["gpu_hours_per_trial"] = out["gpu_hours"] / out["trials"]
    medals = out["medals"].replace(0, np.nan)
    out["cpu_hours_per_medal"] = out["cpu_hours"] / medals
    out["gpu_hours_per_medal"] = out["gpu_hours"] / medals
    if has_llm(df):
        llm = llm_table(df, by)
        out = out.merge(llm.drop(columns=["trials", "medals"]), on=by, how="left")
    return out


LLM_COLUMNS = ("llm_calls", "llm_input_tokens", "llm_output_tokens", "llm_cached_tokens", "llm_cost_usd")


def has_llm(df: pd.DataFrame) -> bool:
    """Whether any record carries LLM accounting (an agent run with llm: true)."""
    return "llm_calls" in df.columns and bool(df["llm_calls"].notna().any())


def llm_table(df: pd.DataFrame, by: Optional[List[str]] = None) -> pd.DataFrame:
    """Per group: trials, medals, LLM calls, input / output / cached tokens and dollars in total, per trial
    and per medal (NaN where no medal was won), and how many trials ran out of an LLM budget. A trial
    without accounting (not an LLM agent) counts as 0."""
    by = by or group_keys(df)
    d = df.copy()
    for col in LLM_COLUMNS:
        d[col] = pd.to_numeric(d[col] if col in d.columns else 0, errors="coerce").fillna(0.0)
    d["llm_tokens"] = d["llm_input_tokens"] + d["llm_output_tokens"]
    exhausted = d["llm_budget_exhausted"] if "llm_budget_exhausted" in d.columns else pd.Series(None, index=d.index)
    d["llm_budget_hit"] = exhausted.fillna("").astype(str).str.len() > 0
    g = d.groupby(by, sort=True)
    out = g.agg(trials=("competition_id", "size"), medals=("any_medal", "sum"), llm_calls=("llm_calls", "sum"),
                llm_input_tokens=("llm_input_tokens", "sum"), llm_output_tokens=("llm_output_tokens", "sum"),
                llm_cached_tokens=("llm_cached_tokens", "sum"), llm_tokens=("llm_tokens", "sum"),
                llm_cost_usd=("llm_cost_usd", "sum"), llm_budget_hit=("llm_budget_hit", "sum")).reset_index()
    out["medals"] = out["medals"].astype(int)
    for col in ("llm_calls", "llm_input_tokens", "llm_output_tokens", "llm_cached_tokens", "llm_tokens",
                "llm_budget_hit"):
        out[col] = out[col].astype(int)
    medals = out["medals"].replace(0, np.nan)
    out["llm_tokens_per_trial"] = out["llm_tokens"] / out["trials"]
    out["llm_cost_usd_per_trial"] = out["llm_cost_usd"] / out["trials"]
    out["llm_tokens_per_medal"] = out["llm_tokens"] / medals
    out["llm_cost_usd_per_medal"] = out["llm_cost_usd"] / medals
    return out
