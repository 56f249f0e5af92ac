"""Hourly bike-rental demand, Washington D.C., 2011-2012 (UCI Bike Sharing, CC BY 4.0)."""

from datetime import date

from ml.spec import BusinessFigure, Column, Slice, SumRule, UseCaseSpec

_UNIT = dict(dtype="float", min=0.0, max=1.0)

SPEC = UseCaseSpec(
    name="rentals",
    entity="rental",
    columns=(
        Column("instant", "int", min=1),
        Column("dteday", "date"),
        Column("season", "int", allowed=(1, 2, 3, 4), categorical=True),
        Column("yr", "int", allowed=(0, 1), categorical=True),
        Column("mnth", "int", min=1, max=12, period=12),
        Column("hr", "int", min=0, max=23, period=24),
        Column("holiday", "int", allowed=(0, 1), categorical=True),
        Column("weekday", "int", min=0, max=6, period=7),
        Column("workingday", "int", allowed=(0, 1), categorical=True),
        Column("weathersit", "int", allowed=(1, 2, 3, 4), categorical=True),
        Column("temp", **_UNIT),
        Column("atemp", **_UNIT),
        Column("hum", **_UNIT),
        Column("windspeed", **_UNIT),
        Column("casual", "int", min=0),
        Column("registered", "int", min=0),
        Column("cnt", "int", min=0),
    ),
    key=("dteday", "hr"),
    target="cnt",
    leakage=("casual", "registered"),
    ignored=("instant", "yr"),
    event_date="dteday",
    partition_start=date(2011, 1, 1),
    partition_end=date(2012, 12, 31),
    sum_rules=(SumRule("cnt", ("casual", "registered")),),
    slices=(
        Slice("season", "season", labels=("winter", "spring", "summer", "fall")),
        Slice("weathersit", "weathersit", labels=("clear", "mist", "light_rain", "heavy_rain")),
        Slice("workingday", "workingday", labels=("off_day", "working_day")),
        Slice("hour_band", "hr", bins=(0, 6, 10, 16, 20, 24),
              labels=("night", "morning_peak", "midday", "evening_peak", "late")),
    ),
    expected_rows_per_partition=24,
    drift_columns=("hr", "weathersit", "temp", "atemp", "hum", "windspeed"),
    seasonal_period_days=7,
    business_figure=BusinessFigure(unit="bikes", short="bikes_short_per_day", idle="bikes_idle_per_day"),
    estimator_excludes=("mnth", "season", "temp", "atemp"),
)
