"""Escalation policies, a Watchkeeper extension beside Alertmanager's `route` (the runbooks' operations ->
technical team -> external support, each with a response time):

```yaml
escalation_policies:
  - name: ops-tech-external
    levels:
      - {receivers: [ops], after: 15m}      # ops has 15 minutes to acknowledge ...
      - {receivers: [tech], after: 30m}     # ... then tech is paged too, and has 30 minutes ...
      - {receivers: [external]}             # ... then external support
route:
  receiver: ops
  escalation: ops-tech-external
```

A group routed to a policy notifies level 1 at its first flush; each next level is reached when the
current level's `after` has passed while the group still has a firing alert that nobody acknowledged
(nor silenced or inhibited). A reached level's receivers are then receivers of the group like the route's
own: they get its repeats and, when it resolves, its resolved notification. An ack holds the escalation
(an expired ack, or a new unacknowledged alert, lets it go on); a resolution ends it.

A level is reached at the time it is reached, never back-dated: a sink that was down past two deadlines
reaches the next level when it comes back and gives that level its full `after`, so a restart neither
restarts a policy nor skips a level's response time. Pure: time comes in as `now`; the state is a small
record the sink stores durably.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchkeeper.core.notify.notification import rfc3339
from watchkeeper.core.notify.receiver_configs import duration
from watchkeeper.core.yaml_source import YamlDocument


class LevelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receivers: list[str] = Field(min_length=1)
    after: float | None = None

    _d = field_validator("after", mode="before")(duration)


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    levels: list[LevelSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Level:
    receivers: tuple[str, ...]
    after: float | None  # how long this level has to acknowledge before the next is notified


@dataclass(frozen=True)
class Policy:
    name: str
    levels: tuple[Level, ...]

    def receivers_up_to(self, level: int) -> list[str]:
        """The receivers of levels 1..`level`, each once, in level order."""
        out: list[str] = []
        for lv in self.levels[:level]:
            out += [r for r in lv.receivers if r not in out]
        return out


@dataclass
class EscalationState:
    """Where one group is in its policy. `level` is 1-based; `history` is [(level, reached at)]."""

    group_key: str
    policy: str
    level: int
    since: float
    held: bool = False  # the deadline passed while every firing alert was acknowledged
    history: list[tuple[int, float]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # the group's labels, for the dashboard

    def deadline(self, policy: Policy) -> float | None:
        """When the next level is due, or None at the last level."""
        if self.level >= len(policy.levels):
            return None
        after = policy.levels[self.level - 1].after
        return None if after is None else self.since + after

    def to_json(self) -> dict[str, Any]:
        return {"group_key": self.group_key, "policy": self.policy, "level": self.level, "since": self.since,
                "held": self.held, "history": [list(h) for h in self.history], "labels": self.labels}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EscalationState:
        return cls(d["group_key"], d["policy"], int(d["level"]), float(d["since"]), bool(d.get("held", False)),
                   [(int(lv), float(t)) for lv, t in d.get("history", [])], dict(d.get("labels", {})))


def start(policy: Policy, group_key: str, now: float, labels: dict[str, str] | None = None) -> EscalationState:
    """A group's first flush with an unacknowledged firing alert: level 1 from now."""
    return EscalationState(group_key, policy.name, 1, now, history=[(1, now)], labels=dict(labels or {}))


def step(policy: Policy, st: EscalationState, now: float, unacked_firing: bool) -> bool:
    """Move to the next level if its time has come and somebody still has to be told; True if it moved.
    Called at every flush of the group and at the deadline."""
    due = st.deadline(policy)
    if due is None or now < due:
        return False
    if not unacked_firing:
        st.held = True
        return False
    return _advance(st, now)


def force_next(policy: Policy, st: EscalationState, now: float) -> bool:
    """Go to the next level now, whatever the delay (a remediation that failed); False at the last level."""
    if st.level >= len(policy.levels):
        return False
    return _advance(st, now)


def _advance(st: EscalationState, now: float) -> bool:
    st.level += 1
    st.since = now
    st.held = False
    st.history.append((st.level, now))
    return True


def describe(policy: Policy | None, st: EscalationState, acked_by: str = "") -> str:
    """"level 2 of 3 (ops-tech-external) since 10:42:00Z, not acknowledged": for records and the dashboard."""
    total = f" of {len(policy.levels)}" if policy else ""
    ack = f"acknowledged by {acked_by}" if acked_by else "not acknowledged"
    return f"level {st.level}{total} ({st.policy}) since {rfc3339(st.since)}, {ack}"


def build_policies(doc: YamlDocument, specs: list[PolicySpec], receivers: Collection[str]) -> dict[str, Policy]:
    """Validated policies by name; errors name the file, line and field."""
    out: dict[str, Policy] = {}
    for i, p in enumerate(specs):
        if p.name in out:
            raise doc.error(("escalation_policies", i, "name"), f"escalation policy {p.name!r} is defined twice")
        for j, lv in enumerate(p.levels):
            for k, r in enumerate(lv.receivers):
                if r not in receivers:
                    raise doc.error(("escalation_policies", i, "levels", j, "receivers", k),
                                    f"receiver {r!r} is not defined under receivers")
            last = j == len(p.levels) - 1
            if not last and (lv.after is None or lv.after <= 0):
                raise doc.error(("escalation_policies", i, "levels", j, "after"),
                                "every level but the last needs `after` (how long it has to acknowledge, e.g. 15m)")
        out[p.name] = Policy(p.name, tuple(Level(tuple(lv.receivers), lv.after) for lv in p.levels))
    return out


class Escalator:
    """Every group's escalation, as the sink drives it: `on_flush` at each flush of a group whose route has
    a policy, `due` for deadlines between flushes, `end` when the group is gone. The caller stores each
    state these return (changed) and forgets the ones `end` returns."""

    def __init__(self, policies: dict[str, Policy], states: dict[str, EscalationState] | None = None) -> None:
        self.policies = policies
        # A state whose policy was removed from the config is kept as is: the group ends it, nobody pages.
        self.states: dict[str, EscalationState] = dict(states or {})

    def on_flush(self, group_key: str, policy_name: str, now: float, unacked_firing: bool,
                 labels: dict[str, str] | None = None) -> EscalationState | None:
        """Start or advance the group's escalation; the state if it changed, else None."""
        policy = self.policies.get(policy_name)
        if policy is None:
            return None
        st = self.states.get(group_key)
        if st is None:
            if not unacked_firing:
                return None
            st = self.states[group_key] = start(policy, group_key, now, labels)
            return st
        held = st.held
        if step(policy, st, now, unacked_firing) or st.held != held:
            return st
        return None

    def escalate_now(self, group_key: str, now: float) -> EscalationState | None:
        st = self.states.get(group_key)
        policy = self.policies.get(st.policy) if st else None
        if st is None or policy is None or not force_next(policy, st, now):
            return None
        return st

    def receivers(self, group_key: str) -> list[str]:
        st = self.states.get(group_key)
        policy = self.policies.get(st.policy) if st else None
        return policy.receivers_up_to(st.level) if st and policy else []

    def due(self, now: float) -> list[str]:
        """Groups whose next level is due (held ones wait for their group's next flush)."""
        out = []
        for key, st in self.states.items():
            policy = self.policies.get(st.policy)
            dl = st.deadline(policy) if policy and not st.held else None
            if dl is not None and dl <= now:
                out.append(key)
        return out

    def next_deadline(self) -> float | None:
        dls = [st.deadline(p) for st in self.states.values() if not st.held
               and (p := self.policies.get(st.policy)) is not None]
        return min((d for d in dls if d is not None), default=None)

    def end(self, group_key: str) -> EscalationState | None:
        return self.states.pop(group_key, None)
