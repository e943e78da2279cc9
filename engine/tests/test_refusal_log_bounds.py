"""Refusal logging stays bounded under a flood: a record each for the first refusals of an
interval, then one summary per interval, with a fake clock."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from corsguard.middleware import (
    REFUSAL_LOG_BOUND,
    REFUSAL_LOG_INTERVAL,
    REFUSAL_ORIGINS_TRACKED,
    CORSPolicy,
    PolicyCORSMiddleware,
    RefusalLog,
    log_refusal,
)

CORS_LOGGER = "corsguard.refusals"
REASON = "origin not in the allowed origins"
ALLOWED = "https://app.example.com"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def info_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CORS_LOGGER)  # restored after the test


def messages(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.name == CORS_LOGGER]


def summaries(records: list[logging.LogRecord]) -> list[str]:
    return [m for m in messages(records) if m.startswith("CORS refused ") and " requests in " in m]


def origin(number: int) -> str:
    return f"https://attacker-{number}.example.net"


def test_a_flood_of_distinct_origins_gives_the_bound_then_one_summary(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = RefusalLog(clock=clock)
    for number in range(1000):
        clock.now += 0.05  # 1,000 refusals within 50 s: one interval
        log.refused("request", origin(number), REASON)
    assert messages(caplog.records) == [
        f"CORS refused request from origin {origin(n)!r}: {REASON}"
        for n in range(REFUSAL_LOG_BOUND)
    ]
    clock.now += REFUSAL_LOG_INTERVAL  # the next refusal ends the interval
    log.refused("request", "https://late.example.org", REASON)
    [summary] = summaries(caplog.records)
    shown = ", ".join(f"{origin(n)!r} 1" for n in range(5))
    assert summary == (
        f"CORS refused 1000 requests in 60 s, 980 of them without a record of their own "
        f"(at most 20 per 60 s); by origin: {shown}, and 995 more origins"
    )
    # The summary comes first, then the new interval's first refusal, with its reason.
    assert messages(caplog.records)[-2:] == [
        summary,
        f"CORS refused request from origin 'https://late.example.org': {REASON}",
    ]
    assert len(messages(caplog.records)) == REFUSAL_LOG_BOUND + 2


def test_the_records_per_interval_stay_bounded_over_many_intervals(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = RefusalLog(clock=clock)
    for second in range(600):  # ten minutes at 100 refusals a second
        clock.now += 1
        for number in range(100):
            log.refused("request", origin(second * 100 + number), REASON)
    intervals = 600 / REFUSAL_LOG_INTERVAL
    assert len(summaries(caplog.records)) <= intervals
    assert len(messages(caplog.records)) <= intervals * (REFUSAL_LOG_BOUND + 1)


def test_the_summary_counts_the_top_origins_and_how_many_more(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = RefusalLog(clock=clock)
    sent = {"https://a.example": 500, "https://b.example": 300, "https://c.example": 100}
    sent |= {f"https://d{n}.example": 10 - n for n in range(8)}  # 10, 9, ..., 3
    for value, count in sent.items():
        for _ in range(count):
            log.refused("preflight", value, "origin not allowed")
    clock.now += REFUSAL_LOG_INTERVAL
    log.refused("preflight", "https://a.example", "origin not allowed")
    [summary] = summaries(caplog.records)
    total = sum(sent.values())
    assert summary.startswith(f"CORS refused {total} requests in 60 s, {total - 20} of them ")
    assert summary.endswith(
        "by origin: 'https://a.example' 500, 'https://b.example' 300, 'https://c.example' 100, "
        "'https://d0.example' 10, 'https://d1.example' 9, and 6 more origins"
    )


def test_without_a_flood_there_is_no_summary_and_every_refusal_is_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = RefusalLog(clock=clock)
    for number in range(3 * REFUSAL_LOG_BOUND):
        clock.now += 10  # 6 a minute: under the bound
        log.refused("request", origin(number), REASON)
    assert summaries(caplog.records) == []
    assert len(messages(caplog.records)) == 3 * REFUSAL_LOG_BOUND


def test_after_a_quiet_interval_a_new_origin_is_logged_at_once_with_its_reason(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = RefusalLog(clock=clock)
    for number in range(200):
        log.refused("request", origin(number), REASON)
    clock.now += REFUSAL_LOG_INTERVAL + 1
    log.refused("request", "https://late.example.org", "the reason explain gives")
    clock.now += 5 * REFUSAL_LOG_INTERVAL  # quiet
    reasons: list[str] = []

    def reason() -> str:
        reasons.append("asked")
        return "the reason explain gives"

    log.refused("request", "https://new.example.org", reason)
    assert len(summaries(caplog.records)) == 1  # the quiet interval had nothing to sum up
    assert messages(caplog.records)[-1] == (
        "CORS refused request from origin 'https://new.example.org': the reason explain gives"
    )
    assert reasons == ["asked"]


def test_a_refusal_past_the_bound_does_not_work_out_its_reason(clock: FakeClock) -> None:
    asked: list[str] = []

    def reason() -> str:
        asked.append("asked")
        return REASON

    log = RefusalLog(clock=clock)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logging.getLogger(CORS_LOGGER), "level", logging.INFO)
        for number in range(100):
            log.refused("request", origin(number), reason)
    assert len(asked) == REFUSAL_LOG_BOUND


def test_the_distinct_origins_held_stay_capped(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = RefusalLog(clock=clock)
    for number in range(5 * REFUSAL_ORIGINS_TRACKED):
        log.refused("request", origin(number) + "x" * 1000, REASON)
        assert log.tracked_origins <= REFUSAL_ORIGINS_TRACKED
    assert log.tracked_origins == REFUSAL_ORIGINS_TRACKED
    clock.now += REFUSAL_LOG_INTERVAL
    log.refused("request", ALLOWED, REASON)
    [summary] = summaries(caplog.records)
    assert summary.startswith("CORS refused 5000 requests in 60 s, 4980 of them")
    assert summary.endswith(
        f", and {REFUSAL_ORIGINS_TRACKED - 5} more origins, and 4000 requests from further "
        f"origins (past the first {REFUSAL_ORIGINS_TRACKED}, not counted by origin)"
    )
    assert len(summary) < 2000  # origins escaped and cut with loggable()
    assert log.tracked_origins == 1  # the new interval starts empty


def test_nothing_is_counted_when_refusals_are_not_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = RefusalLog(clock=clock)
    with caplog.at_level(logging.WARNING, logger=CORS_LOGGER):
        for number in range(100):
            log.refused("request", origin(number), REASON)
    assert log.tracked_origins == 0
    assert messages(caplog.records) == []


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_the_layer_writes_through_the_bound(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused requests, preflights and cross-origin writes share one bound."""
    policy = CORSPolicy(
        entries=(ALLOWED, "https://*.preview.example.com"),
        allow_credentials=False,
        allow_methods=("GET",),
        allow_headers=(),
        expose_headers=(),
        max_age=600,
    )
    layer = PolicyCORSMiddleware(ok, policy, refusals=RefusalLog(clock=clock))

    async def flood() -> None:
        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            pass

        for number in range(300):
            headers = [(b"origin", origin(number).encode())]
            if number % 3 == 1:
                headers.append((b"access-control-request-method", b"GET"))
            method = "OPTIONS" if number % 3 == 1 else "GET"
            scope = {"type": "http", "method": method, "path": "/", "headers": headers}
            await layer(scope, receive, send)
        allowed = {"type": "http", "method": "GET", "path": "/", "headers": [(b"origin", b"")]}
        allowed["headers"] = [(b"origin", ALLOWED.encode())]
        await layer(allowed, receive, send)
        clock.now += REFUSAL_LOG_INTERVAL
        await layer(
            {**allowed, "headers": [(b"origin", b"https://new.example.org")]}, receive, send
        )

    asyncio.run(flood())
    logged = messages(caplog.records)
    assert len(logged) == REFUSAL_LOG_BOUND + 2
    assert logged[0] == f"CORS refused request from origin {origin(0)!r}: {REASON}"
    assert logged[1].startswith(f"CORS refused preflight from origin {origin(1)!r}: origin ")
    assert summaries(caplog.records)[0].startswith("CORS refused 300 requests in 60 s, 280 of them")
    assert logged[-1] == f"CORS refused request from origin 'https://new.example.org': {REASON}"


def flood_bytes(bounded: bool) -> tuple[int, int]:
    """Log bytes and records of 1,000 refusals a second from distinct origins over 60
    simulated seconds at INFO, in configure_logging's format."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logger = logging.getLogger(CORS_LOGGER)
    level, logger.level = logger.level, logging.INFO
    logger.addHandler(handler)
    clock = FakeClock()
    log = RefusalLog(clock=clock)
    try:
        for second in range(60):
            for number in range(1000):
                clock.now = 1000.0 + second + number / 1000
                value = origin(second * 1000 + number)
                if bounded:
                    log.refused("request", value, REASON)
                else:
                    log_refusal("request", value, REASON)  # one record per refusal
        clock.now += REFUSAL_LOG_INTERVAL
        if bounded:  # the summary of the flood's interval
            log.refused("request", "https://after.example.org", REASON)
    finally:
        logger.removeHandler(handler)
        logger.level = level
    text = stream.getvalue()
    return len(text.encode()), text.count("\n")


def test_a_minute_of_flood_writes_kilobytes_not_megabytes() -> None:
    before, before_records = flood_bytes(bounded=False)
    after, after_records = flood_bytes(bounded=True)
    assert before_records == 60_000
    assert after_records <= REFUSAL_LOG_BOUND + 2
    assert after < 10_000 < 5_000_000 < before
    print(
        f"flood bytes per minute: before {before} ({before_records} records), "
        f"after {after} ({after_records} records)"
    )
