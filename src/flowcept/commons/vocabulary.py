"""Vocabulary of record values (compatibility path)."""

from flowcept.records import Status


class ML_Types:  # noqa: N801 - documented name
    """Subtypes used by ML workflows."""

    WORKFLOW = "ml_workflow"
    DATA_PREP = "dataprep"
    LEARNING = "learning"
    MODEL_SELECTION = "model_selection"


class PROV_AGENT:  # noqa: N801 - documented name
    """Subtypes used by agent capture."""

    AI_MODEL_INVOCATION = "ai_model_invocation"
    AGENT_TOOL = "agent_tool"


__all__ = ["Status", "ML_Types", "PROV_AGENT"]
