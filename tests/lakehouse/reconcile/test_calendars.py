"""Sessions per calendar: half days, FX week, crypto days, CME Globex."""

from datetime import UTC, date, datetime

import polars as pl
import pytest

from core.errors import ConfigError
from lakehouse.calendars import session_close, sessions

UTC = UTC


def test_xnys_half_day_closes_early():
    s = sessions("XNYS", date(2013, 11, 27), date(2013, 11, 29))
    assert s["session"].to_list() == [date(2013, 11, 27), date(2013, 11, 29)]  # Thanksgiving closed
    assert s["close"].to_list()[1] == datetime(2013, 11, 29, 18, 0, tzinfo=UTC)


def test_fx_week_opens_sunday_17h_new_york():
    s = sessions("24/5", date(2014, 5, 2), date(2014, 5, 5))
    assert s["session"].to_list() == [date(2014, 5, 2), date(2014, 5, 5)]
    assert s["open"].to_list()[1] == datetime(2014, 5, 4, 21, 0, tzinfo=UTC)


def test_crypto_and_cme_sessions():
    assert sessions("24/7", date(2022, 12, 10), date(2022, 12, 11)).height == 2
    cme = sessions("CMES", date(2013, 11, 29), date(2013, 11, 29))
    assert cme["open"].item() == datetime(2013, 11, 28, 23, 0, tzinfo=UTC)


def test_session_close_of_dates_and_unknown_calendar():
    closes = session_close("XNYS", pl.Series([date(2004, 8, 19), date(2004, 8, 21)]))
    assert closes.to_list() == [datetime(2004, 8, 19, 20, 0, tzinfo=UTC), None]
    with pytest.raises(ConfigError):
        sessions("NOPE", date(2020, 1, 1), date(2020, 1, 2))
