"""DLQ selections and cursors: the pure parts of `scheduler.dlq`, without servers."""

from datetime import UTC, datetime

import pytest

from scheduler.dlq import DeadEntry, InvalidCursorError, Selection, decode_cursor, encode_cursor


def test_a_cursor_round_trips_the_last_rows_position() -> None:
    """decode(encode(entry)) is the entry's (died_at, job_id), microseconds included."""
    at = datetime(2030, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
    entry = DeadEntry("job-1", "mail", {}, 5, "boom", at)
    assert decode_cursor(encode_cursor(entry)) == (at, "job-1")


@pytest.mark.parametrize(
    "cursor", ["", "!!!", "bm90LWpzb24", "WzEsMl0", "WyIyMDMwLTAxLTAxIiwgImEiXQ"]
)
def test_a_forged_cursor_is_refused(cursor: str) -> None:
    """Garbage, non-JSON, wrong shapes and naive times are InvalidCursorError, not a crash."""
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)


def test_a_selection_is_never_empty_nor_mixed() -> None:
    """Nothing selected, or ids with a filter, is refused; type and age combine with AND."""
    with pytest.raises(ValueError, match="by ids, by type, or by age"):
        Selection()
    with pytest.raises(ValueError, match="not both"):
        Selection(ids=("a",), job_type="mail")
    selection = Selection(job_type="mail", older_than=datetime(2030, 1, 1, tzinfo=UTC))
    clause = str(selection.clause())
    assert "scheduler_dead.type = " in clause
    assert "scheduler_dead.died_at < " in clause
