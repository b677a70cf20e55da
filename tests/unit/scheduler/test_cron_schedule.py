"""Cron schedules: parsing, next and latest ticks in UTC, and the refusal of bad input."""

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cron.schedule import Schedule, parse_spec


def ms(*fields: int) -> int:
    """Epoch ms of a UTC date and time: year, month, day[, hour[, minute[, second]]]."""
    year, month, day, *time = fields
    hour, minute, second = [*time, 0, 0, 0][:3]
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


PROPERTIES = settings(max_examples=200, deadline=None, derandomize=True, database=None)
EXPRESSIONS = [
    "* * * * *",
    "*/7 * * * *",
    "0 */3 * * *",
    "15 10 L * *",
    "0 0 29 2 *",
    "0 12 * * MON-FRI",
    "*/20 * * * * *",
]


def every(expression: str) -> Schedule:
    """A schedule of `expression` that enqueues noop jobs."""
    return Schedule(name="s", expression=expression, job_type="noop")


def ticks(schedule: Schedule, after_ms: int, n: int) -> list[int]:
    """The first `n` ticks strictly after `after_ms`."""
    found: list[int] = []
    for _ in range(n):
        tick = schedule.next_tick_ms(found[-1] if found else after_ms)
        assert tick is not None
        found.append(tick)
    return found


def test_step_values_tick_on_multiples_not_from_the_start_time() -> None:
    """`*/5` ticks on minutes divisible by 5, whenever the evaluation starts."""
    start = ms(2024, 3, 10, 12, 3) + 17_250
    assert ticks(every("*/5 * * * *"), start, 3) == [
        ms(2024, 3, 10, 12, 5),
        ms(2024, 3, 10, 12, 10),
        ms(2024, 3, 10, 12, 15),
    ]


def test_ranges_with_steps_and_lists() -> None:
    """`10-30/10` and `0,45` combine as cron does."""
    assert ticks(every("10-30/10 9,17 * * *"), ms(2024, 1, 1), 4) == [
        ms(2024, 1, 1, 9, 10),
        ms(2024, 1, 1, 9, 20),
        ms(2024, 1, 1, 9, 30),
        ms(2024, 1, 1, 17, 10),
    ]


def test_the_next_tick_is_strictly_after_the_given_instant() -> None:
    """A tick exactly at `after_ms` is not next; one millisecond before it, it is."""
    schedule = every("0 * * * *")
    assert schedule.next_tick_ms(ms(2024, 1, 1, 5)) == ms(2024, 1, 1, 6)
    assert schedule.next_tick_ms(ms(2024, 1, 1, 5) - 1) == ms(2024, 1, 1, 5)


def test_the_latest_tick_includes_the_given_instant() -> None:
    """The latest tick at or before now is now itself when now is a tick."""
    schedule = every("0 * * * *")
    assert schedule.latest_tick_ms(ms(2024, 1, 1, 5)) == ms(2024, 1, 1, 5)
    assert schedule.latest_tick_ms(ms(2024, 1, 1, 5) - 1) == ms(2024, 1, 1, 4)
    assert schedule.latest_tick_ms(ms(2024, 1, 1, 5, 59) + 999) == ms(2024, 1, 1, 5)


@PROPERTIES
@given(
    expression=st.sampled_from(EXPRESSIONS),
    now_ms=st.integers(min_value=ms(2000, 1, 1), max_value=ms(2099, 1, 1)),
)
def test_now_lies_between_the_latest_and_the_next_tick_with_none_between(
    expression: str, now_ms: int
) -> None:
    """The latest tick <= now < the next tick, whole seconds, with no tick between them."""
    schedule = every(expression)
    latest = schedule.latest_tick_ms(now_ms)
    upcoming = schedule.next_tick_ms(now_ms)
    assert latest is not None
    assert upcoming is not None
    assert latest <= now_ms < upcoming
    assert latest % 1000 == upcoming % 1000 == 0
    assert schedule.next_tick_ms(latest) == upcoming
    assert schedule.latest_tick_ms(upcoming - 1) == latest


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ((2024, 1, 31, 0, 0, 1), (2024, 3, 31)),  # February has no 31st
        ((2023, 2, 28, 0, 0, 1), (2023, 3, 31)),
    ],
)
def test_day_31_skips_the_months_without_one(
    after: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    """`0 0 31 * *` skips the months without a 31st."""
    assert every("0 0 31 * *").next_tick_ms(ms(*after)) == ms(*expected)


def test_february_29th_waits_for_a_leap_year() -> None:
    """`0 0 29 2 *` is next in the next leap year."""
    assert every("0 0 29 2 *").next_tick_ms(ms(2025, 3, 1)) == ms(2028, 2, 29)


def test_the_last_day_of_the_month_across_the_year_end() -> None:
    """`L` as the day of the month is each month's last day, across December."""
    assert ticks(every("30 23 L * *"), ms(2024, 11, 15), 3) == [
        ms(2024, 11, 30, 23, 30),
        ms(2024, 12, 31, 23, 30),
        ms(2025, 1, 31, 23, 30),
    ]


def test_utc_has_no_dst_gap_or_repeat() -> None:
    """Across the European DST switch (in UTC there is none), hourly ticks stay an hour apart."""
    hourly = ticks(every("30 * * * *"), ms(2024, 3, 30, 23), 6)
    assert {b - a for a, b in itertools.pairwise(hourly)} == {3_600_000}


def test_a_leading_seconds_field_ticks_every_few_seconds() -> None:
    """Six fields put seconds first: `*/15 * * * * *` ticks every 15 s."""
    assert ticks(every("*/15 * * * * *"), ms(2024, 1, 1, 0, 0, 1), 3) == [
        ms(2024, 1, 1, 0, 0, 15),
        ms(2024, 1, 1, 0, 0, 30),
        ms(2024, 1, 1, 0, 0, 45),
    ]


def test_an_expression_that_never_matches_has_no_next_tick() -> None:
    """A valid expression with no match within 50 years has no next or latest tick."""
    never = every("* * */20 * 1L")  # the 1st or 21st that is also the last Monday
    assert never.next_tick_ms(ms(2024, 1, 1)) is None
    assert never.latest_tick_ms(ms(2024, 1, 1)) is None


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("61 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("* * 0 * *", "Bad day-of-month"),
        ("* * * 13 *", "Bad month"),
        ("* * * * 8", "Bad day-of-week"),
        ("*/0 * * * *", "Bad minute"),
        ("* * * *", "Wrong number of fields"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("", "Wrong number of fields"),
    ],
)
def test_invalid_expressions_are_refused_naming_the_problem(expression: str, why: str) -> None:
    """An invalid expression is a ValueError naming the schedule, the expression and the field."""
    with pytest.raises(ValueError, match="invalid cron expression") as refused:
        every(expression)
    assert why in str(refused.value)
    assert repr(expression) in str(refused.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "a b"}, "schedule name"),
        ({"name": "a:b"}, "schedule name"),
        ({"name": ""}, "schedule name"),
        ({"job_type": ""}, "job type is empty"),
        ({"priority": 10}, "priority"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_invalid_schedules_are_refused(changes: dict[str, object], message: str) -> None:
    """Names unfit for keys, empty types and out-of-range numbers are refused."""
    fields: dict[str, object] = {"name": "s", "expression": "* * * * *", "job_type": "noop"}
    with pytest.raises(ValueError, match=message):
        Schedule(**(fields | changes))  # type: ignore[arg-type]


def test_a_ticks_job_is_deterministic_and_due_at_the_tick() -> None:
    """Every process names a tick's job the same, due at the tick."""
    schedule = Schedule("digest", "0 6 * * *", "mail", {"to": "ops"}, priority=3, max_attempts=2)
    job = schedule.job(ms(2024, 1, 1, 6))
    assert job.id == f"cron:digest:{ms(2024, 1, 1, 6)}"
    assert (job.type, job.payload, job.priority, job.max_attempts) == ("mail", {"to": "ops"}, 3, 2)
    assert job.run_at_ms == ms(2024, 1, 1, 6)
    assert schedule.fence == "cron:digest"


def test_a_spec_with_every_field() -> None:
    """`name|expression|type|payload|priority|max attempts` sets them all."""
    assert parse_spec('digest|0 6 * * MON|mail|{"to": "ops"}|5|2') == Schedule(
        "digest", "0 6 * * MON", "mail", {"to": "ops"}, priority=5, max_attempts=2
    )


def test_a_spec_with_only_the_required_fields_takes_the_defaults() -> None:
    """Payload, priority and max attempts are optional."""
    assert parse_spec("tick | */5 * * * * | noop") == Schedule("tick", "*/5 * * * *", "noop")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tick|* * * * *", "3 to 6 fields"),
        ("a|* * * * *|noop|{}|1|2|3", "3 to 6 fields"),
        ("tick|* * * * *|noop|{not json", "payload is not JSON"),
        ("tick|* * * * *|noop|[1]", "payload must be a JSON object"),
        ("tick|* * * * *|noop|{}|high", "priority 'high' is not an integer"),
        ("tick|* * * 13 *|noop", "invalid cron expression"),
    ],
)
def test_malformed_specs_are_refused_with_a_reason(spec: str, message: str) -> None:
    """A malformed spec is a ValueError that says which part is wrong."""
    with pytest.raises(ValueError, match=message):
        parse_spec(spec)
