"""Kinds of detail ``explain`` can add, named as in PyFlink."""


class ExplainDetail:
    """Accepted by ``Table.explain`` and ``TableEnvironment.explain_sql``. weir's plan text has
    no cost model, changelog annotations, JSON plan or advice: a detail given adds a line saying
    so, rather than being silently dropped."""

    ESTIMATED_COST = 0
    CHANGELOG_MODE = 1
    JSON_EXECUTION_PLAN = 2
    PLAN_ADVICE = 3

    _NAMES = {0: "ESTIMATED_COST", 1: "CHANGELOG_MODE", 2: "JSON_EXECUTION_PLAN", 3: "PLAN_ADVICE"}


def explain_with(text: str, details: tuple) -> str:
    names = []
    for d in details:
        if d not in ExplainDetail._NAMES:
            raise ValueError(f"explain: unknown ExplainDetail {d!r}")
        names.append(ExplainDetail._NAMES[d])
    if not names:
        return text
    return text.rstrip("\n") + f"\n\n(weir: no {', '.join(names)} in its plans)\n"


__all__ = ["ExplainDetail"]
