"""Property tests for the TIME and DURATION parsers every filter and edit relies on."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from queuetool.errors import UsageError
from queuetool.timeparse import EPOCH_MAX, EPOCH_MIN, format_epoch, parse_duration, parse_time

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Whole-second datetimes from 1970 on: the times an operator gives a queue.
moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30))
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@contextmanager
def local_zone(tz: str) -> Iterator[None]:
    """Run with the process's local time zone set to `tz` (a POSIX TZ string)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


# -- TIME ----------------------------------------------------------------------------


@given(moment=moments, zone=offsets, sep=st.sampled_from(["T", " "]))
def test_iso_with_a_zone_is_that_instant(moment, zone, sep):
    aware = moment.replace(tzinfo=zone)
    expected = (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)
    assert parse_time(aware.isoformat(sep=sep)) == expected


@given(moment=moments)
def test_iso_with_z_is_utc(moment):
    text = moment.replace(microsecond=0).isoformat() + "Z"
    expected = (moment.replace(microsecond=0) - datetime(1970, 1, 1)) // timedelta(seconds=1)
    assert parse_time(text) == expected
    assert parse_time(text) == parse_time(text.replace("Z", "+00:00"))


@given(moment=moments)
def test_fractions_of_a_second_are_dropped(moment):
    whole = moment.replace(microsecond=0, tzinfo=UTC)
    assert parse_time(moment.replace(tzinfo=UTC).isoformat()) == int(whole.timestamp())


# "QQQ-05:30" is POSIX for UTC+5:30 (the sign is inverted); no daylight saving.
@given(moment=moments.map(lambda m: m.replace(microsecond=0)))
def test_iso_without_a_zone_is_local_time(moment):
    with local_zone("QQQ-05:30"):
        got = parse_time(moment.isoformat())
    assert got == int(moment.replace(tzinfo=timezone(timedelta(hours=5, minutes=30))).timestamp())


def test_local_time_follows_daylight_saving():
    with local_zone("Europe/Berlin"):
        assert parse_time("2026-01-15T12:00") == 1768474800  # CET, UTC+1: 11:00Z
        assert parse_time("2026-07-15T12:00") == 1784109600  # CEST, UTC+2: 10:00Z
        assert parse_time("2026-07-15T12:00Z") == 1784116800


@given(epoch=st.integers(min_value=EPOCH_MIN, max_value=EPOCH_MAX))
def test_at_epoch_is_that_epoch(epoch):
    assert parse_time(f"@{epoch}") == epoch
    assert parse_time(f"  @{epoch}\n") == epoch


@pytest.mark.parametrize("text", [f"@{EPOCH_MAX + 1}", f"@{EPOCH_MIN - 1}", "@" + "9" * 30])
def test_epoch_beyond_any_iso_time_is_refused(text):
    with pytest.raises(UsageError, match=r"^time out of range: "):
        parse_time(text)


@given(
    now=st.floats(min_value=0, max_value=2**40), spelling=st.sampled_from(["now", "NOW", " Now "])
)
def test_now_is_the_current_second(now, spelling):
    assert parse_time(spelling, now=now) == int(now)


def test_now_without_a_clock_given_is_the_real_clock():
    before = int(time.time())
    got = parse_time("now")
    assert before <= got <= int(time.time())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a time: ''"),
        ("yesterday", "not a time: 'yesterday'"),
        ("2026-13-01", "not a time: '2026-13-01'"),
        ("2026-02-30T10:00", "not a time: '2026-02-30T10:00'"),
        ("2026-11-28T25:00", "not a time: '2026-11-28T25:00'"),
        ("2026-11-28T23:00+24:00", "not a time: '2026-11-28T23:00+24:00'"),
        ("1700000000", "not a time: '1700000000'"),
        ("@", "not an epoch time: '@'"),
        ("@12x", "not an epoch time: '@12x'"),
        ("@+5", "not an epoch time: '@+5'"),
        ("@1.5", "not an epoch time: '@1.5'"),
        ("@١٢", "not an epoch time: '@١٢'"),
        ("@²", "not an epoch time: '@²'"),
    ],
)
def test_bad_time_is_a_usage_error(text, message):
    with pytest.raises(UsageError) as info:
        parse_time(text)
    assert str(info.value).startswith(message + " (use ")
    assert "\n" not in str(info.value)


@given(text=st.text(max_size=30))
@example("0001-01-01T00:00")
@example("9999-12-31T23:59:59-23:59")
@example("0001-01-01T00:00+23:59")
def test_any_text_is_a_time_or_a_usage_error(text):
    try:
        got = parse_time(text)
    except UsageError:
        return
    assert isinstance(got, int)
    assert EPOCH_MIN - 86400 <= got <= EPOCH_MAX + 86400


def test_format_epoch():
    assert format_epoch(None) == "now"
    assert format_epoch(0) == "now"
    assert format_epoch(1_700_000_000) == "2023-11-14T22:13:20Z"
    assert format_epoch(2**31) == "2038-01-19T03:14:08Z"
    assert format_epoch(EPOCH_MAX + 1) == f"@{EPOCH_MAX + 1}"


@given(moment=moments.map(lambda m: m.replace(microsecond=0, tzinfo=UTC)))
def test_format_epoch_and_parse_time_round_trip(moment):
    epoch = int(moment.timestamp())
    assert parse_time(format_epoch(epoch)) == epoch


# -- DURATION ------------------------------------------------------------------------

parts = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**6), st.sampled_from(list(UNITS))),
    min_size=1,
    max_size=5,
    unique_by=lambda part: part[1],
)


@given(parts=parts, upper=st.booleans(), pad=st.sampled_from(["", " ", "\t"]))
def test_compound_duration_round_trip(parts, upper, pad):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    text = text.upper().replace("M", "m") if upper else text  # M alone is refused
    assert parse_duration(pad + text + pad) == sum(n * UNITS[unit] for n, unit in parts)


@pytest.mark.parametrize("text", ["1M", "2H30M"])
def test_capital_m_is_refused_as_ambiguous(text):
    # A month to many people; read as a minute it rescheduled by a minute.
    with pytest.raises(UsageError, match="M is ambiguous"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["15m15m", "1h2m1h"])
def test_a_unit_given_twice_is_refused(text):
    with pytest.raises(UsageError, match="each unit once"):
        parse_duration(text)


@given(seconds=st.integers(min_value=1, max_value=10**12), pad=st.sampled_from(["", " ", "\t"]))
def test_plain_number_is_refused_with_the_units_to_choose_from(seconds, pad):
    # `--in 15` once moved 69 jobs 15 seconds ahead when 15 minutes were meant.
    with pytest.raises(UsageError) as info:
        parse_duration(pad + str(seconds) + pad)
    assert str(info.value) == (
        f"a duration needs a unit: {pad + str(seconds) + pad!r} "
        f"(use e.g. {seconds}s, {seconds}m, {seconds}h, {seconds}d)"
    )


@given(parts=parts)
def test_a_trailing_number_without_a_unit_is_refused(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts) + "30"
    with pytest.raises(UsageError, match=r"^not a duration: "):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400)],
)
def test_documented_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "00", " 0 "])
def test_zero_needs_no_unit(text):
    # Zero is zero in any unit: a plan's `spread = 0` means no spread.
    assert parse_duration(text) == 0


@pytest.mark.parametrize(
    "text",
    ["", " ", "h", "1x", "1h 30m", "-5m", "+5m", "1.5h", "1hh", "h1", "1y", "²", "١h", "3 s"],
)
def test_bad_duration_is_a_usage_error(text):
    with pytest.raises(UsageError) as info:
        parse_duration(text)
    assert str(info.value) == f"not a duration: {text!r} (use e.g. 90s, 15m, 2h, 1d, 1h30m)"


@given(text=st.text(max_size=12))
def test_any_text_is_a_duration_or_a_usage_error(text):
    try:
        got = parse_duration(text)
    except UsageError:
        return
    assert isinstance(got, int)
    assert got >= 0
    # Whatever parses names a unit: no number stands alone, but zero.
    zero = set(text.strip()) == {"0"}
    assert any(unit in text.lower() for unit in UNITS) or (zero and got == 0)


def test_when_takes_exactly_one_of_at_in_now():
    from queuetool.timeparse import when

    assert when(now=True) == 0
    start = int(time.time())
    assert start + 900 <= when(in_="15m") <= int(time.time()) + 900
    assert when(at="@4102444800") == 4102444800
    for args in ({}, {"at": "@4102444800", "now": True}, {"in_": "1m", "now": True}):
        with pytest.raises(UsageError, match=r"^give exactly one of --at TIME, --in DURATION"):
            when(**args)
    with pytest.raises(UsageError, match=r"^plan p, edit 1: reschedule needs exactly one"):
        when(exactly_one="plan p, edit 1: reschedule needs exactly one of at, in, now")


def test_when_refuses_a_past_at_naming_the_spelling_it_was_given_in():
    from queuetool.timeparse import when

    with pytest.raises(UsageError, match=r"^--at @1 has passed .*: --now makes the jobs due now"):
        when(at="@1")
    with pytest.raises(UsageError, match=r"^edit 2: at @1 has passed .*: now = true makes"):
        when(at="@1", at_name="edit 2: at", instead="now = true")
