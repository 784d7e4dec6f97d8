"""Triggers: what starts a flow (on demand, a schedule, a Slack event, a webhook)."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from flows.definition.errors import fail
from flows.definition.fields import Duration, Model, channel_ref, is_template, regex, timezone_name
from flows.durations import parse_duration
from flows.templating import TemplateError, check_syntax

_DOW_CRONTAB = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_DOW_APS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_day(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    if token in _DOW_CRONTAB:
        return _DOW_CRONTAB[token]
    raise ValueError(f"invalid day of week {token!r} (use 0-7 or mon…sun)")


def _crontab_weekdays(field: str) -> str:
    """Translate a crontab day-of-week field (0 and 7 = Sunday) for APScheduler 3.

    APScheduler 3 numbers days from Monday = 0, so numbers are rewritten as day names.
    """
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"invalid step {step_text!r} in day of week")
            step = int(step_text)
        if span in ("*", "?"):
            low, high = 0, 6
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _crontab_day(first), _crontab_day(last)
            if low > high:
                raise ValueError(f"invalid day-of-week range {span!r}")
        else:
            low = _crontab_day(span)
            high = 7 if step_text else low
        days.update(day % 7 for day in range(low, high + 1, step))
    if len(days) == 7:
        return "*"
    return ",".join(_DOW_APS[day] for day in sorted(days))


@functools.lru_cache(maxsize=4096)
def cron_trigger(expr: str, tz: str | ZoneInfo = "UTC") -> CronTrigger:
    """An APScheduler CronTrigger for a standard 5-field crontab expression.

    Unlike ``CronTrigger.from_crontab`` this keeps crontab's weekday numbering
    (``1-5`` is Monday to Friday). Raises ValueError for invalid expressions. Cached: a
    trigger is immutable, and building one costs ~0.1 ms (10,000 schedules at a start).
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_weekdays(weekday),
        timezone=zone,
    )


def _cron(value: str) -> str:
    value = " ".join(value.split())
    try:
        cron_trigger(value)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
    return value


_EPOCH = datetime(1970, 1, 1)


def _when(value: Any) -> Any:
    """A trigger condition: a template over `trigger` (or true / false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        value = value.strip()
        if not is_template(value) and value.lower() not in ("true", "false", "yes", "no"):
            raise ValueError("expected a template such as \"{{ 'deploy' in trigger.text }}\"")
        try:
            check_syntax(value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
    return value


When = Annotated[str, BeforeValidator(_when)]


class TriggerBase(Model):
    """What every trigger has: `when`, a condition evaluated (in the template sandbox,
    over `trigger`) before a run is created; false means no run."""

    when: When | None = None


class ManualTrigger(TriggerBase):
    """Started on demand: ``/flow run``, a button, a shared link."""

    type: Literal["manual"] = "manual"


class ScheduleTrigger(TriggerBase):
    """Runs on a crontab schedule (``cron``) or at a fixed interval (``every``).

    ``overlap``: what a slot does while the previous run is still running or waiting
    (``skip`` it, ``queue`` it behind that run, at most one waiting, or ``allow`` it);
    ``jitter``: a random delay of up to this much for each slot; ``catchup_window``: how
    late a slot may still start (after downtime, with ``misfire: run_once``)."""

    type: Literal["schedule"] = "schedule"
    cron: Annotated[str, AfterValidator(_cron)] | None = None
    every: Duration | None = None
    timezone: Annotated[str, AfterValidator(timezone_name)] = "UTC"
    misfire: Literal["skip", "run_once"] = "skip"
    overlap: Literal["skip", "queue", "allow"] = "skip"
    jitter: Duration | None = None
    catchup_window: Duration = "1d"

    @field_validator("every")
    @classmethod
    def _check_every(cls, value: str | None) -> str | None:
        # Seconds are allowed: short intervals are how people try a schedule out.
        if value is not None and parse_duration(value) < timedelta(seconds=1):
            raise ValueError("schedules run at most once a second (use 1s or more)")
        return value

    @field_validator("jitter")
    @classmethod
    def _check_jitter(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) > timedelta(hours=1):
            raise ValueError("jitter is at most 1h")
        return value

    @property
    def jitter_delta(self) -> timedelta:
        return parse_duration(self.jitter) if self.jitter else timedelta(0)

    @property
    def catchup_delta(self) -> timedelta:
        return parse_duration(self.catchup_window)

    @model_validator(mode="after")
    def _one_of(self) -> ScheduleTrigger:
        if self.cron is None and self.every is None:
            fail([("cron", "a schedule needs cron or every")])
        if self.cron is not None and self.every is not None:
            fail([("every", "use either cron or every, not both")])
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def every_delta(self) -> timedelta | None:
        return parse_duration(self.every) if self.every is not None else None

    def to_apscheduler(self, start: datetime | None = None) -> BaseTrigger:
        """The APScheduler 3 trigger for this schedule.

        Intervals are anchored at ``start`` (default: 1970-01-01 00:00 in the trigger's
        timezone), so ``every: 1h`` fires on the hour whatever the time the bot started.
        """
        if self.cron is not None:
            return cron_trigger(self.cron, self.zone)
        anchor = start if start is not None else _EPOCH.replace(tzinfo=self.zone)
        if anchor.tzinfo is None:
            anchor = anchor.replace(tzinfo=self.zone)
        delta = self.every_delta or timedelta(minutes=1)
        return IntervalTrigger(
            seconds=int(delta.total_seconds()), start_date=anchor, timezone=self.zone
        )

    def next_fire_time(self, after: datetime, *, start: datetime | None = None) -> datetime | None:
        """The first fire time strictly after ``after`` (naive datetimes are taken as UTC).

        Returned datetimes are aware, in the trigger's timezone.
        """
        if after.tzinfo is None:
            after = after.replace(tzinfo=timezone.utc)
        now = (after + timedelta(microseconds=1)).astimezone(self.zone)
        result = self.to_apscheduler(start).get_next_fire_time(None, now)
        if result is not None and result <= after:  # interval maths at microsecond edges
            result = self.to_apscheduler(start).get_next_fire_time(None, now + timedelta(seconds=1))
        return result


class MessageTrigger(TriggerBase):
    """A message in ``channel`` whose text matches ``pattern`` (a Python regex, searched)."""

    type: Literal["message"] = "message"
    channel: Annotated[str, AfterValidator(channel_ref)]
    pattern: Annotated[str, AfterValidator(regex)]


def _emoji(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().strip(":") if "::" not in value else value.strip()
        if value.startswith(":") and value.endswith(":"):
            value = value[1:-1]
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("expected an emoji name like :rotating_light:")
    return value


class ReactionTrigger(TriggerBase):
    """An emoji reaction added to a message (in ``channel`` if given, else anywhere).

    ``emoji`` is stored without colons (``rotating_light``), as Slack reports it.
    """

    type: Literal["reaction"] = "reaction"
    emoji: Annotated[str, BeforeValidator(_emoji)]
    channel: Annotated[str, AfterValidator(channel_ref)] | None = None


class MemberJoinedTrigger(TriggerBase):
    """Someone joins ``channel``."""

    type: Literal["member_joined"] = "member_joined"
    channel: Annotated[str, AfterValidator(channel_ref)]


class WebhookTrigger(TriggerBase):
    """``POST /hooks/<flow id>`` with the flow's secret token."""

    type: Literal["webhook"] = "webhook"


Trigger = Annotated[
    ManualTrigger
    | ScheduleTrigger
    | MessageTrigger
    | ReactionTrigger
    | MemberJoinedTrigger
    | WebhookTrigger,
    Field(discriminator="type"),
]
TRIGGER_TYPES: tuple[str, ...] = (
    "manual",
    "schedule",
    "message",
    "reaction",
    "member_joined",
    "webhook",
)
AUTOMATED_TRIGGERS = ("message", "reaction", "member_joined", "webhook")
TRIGGER_CLASSES: dict[str, type[BaseModel]] = {
    "manual": ManualTrigger,
    "schedule": ScheduleTrigger,
    "message": MessageTrigger,
    "reaction": ReactionTrigger,
    "member_joined": MemberJoinedTrigger,
    "webhook": WebhookTrigger,
}
