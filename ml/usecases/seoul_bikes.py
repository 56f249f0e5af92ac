"""Hourly bike-rental demand, Seoul, 2017-12-01 to 2018-11-30 (UCI Seoul Bike Sharing Demand, CC BY 4.0).

The file `data/seoul_bikes.csv` is the UCI Machine Learning Repository data set 560, shipped byte for
byte. Credit: Sathishkumar V E, Jangwoo Park and Yongyun Cho, "Using data mining techniques for bike
sharing demand prediction in metropolitan city", Computer Communications, vol. 153, pp. 353-366, 2020;
and Sathishkumar V E and Yongyun Cho, "A rule-based model for Seoul Bike sharing demand prediction
using weather data", European Journal of Remote Sensing, 2020 (see `data/seoul_bikes.README.md`).

Unlike the Washington file: day-first dates without zero padding (`1/12/2017`), header names with
spaces and units, seasons and holidays as text, `Functioning Day` as Yes/No. On a day that is not a
functioning day the count is 0 by rule, not by demand. One year only, so drift runs across seasons.
Ranges are what is physically possible for an hourly reading in Seoul, not the file's min and max.
"""

from datetime import date

from ml.spec import BusinessFigure, Column, ConditionalRule, Slice, UseCaseSpec

SPEC = UseCaseSpec(
    name="seoul_bikes",
    entity="seoul_bike",
    columns=(
        Column("date", "date", raw_name="Date", format="%d/%m/%Y"),  # 1/12/2017 and 18/09/2018 both occur
        Column("rented_bike_count", "int", raw_name="Rented Bike Count", min=0, unit="bikes/hour"),
        Column("hour", "int", raw_name="Hour", min=0, max=23, period=24),
        Column("temperature", "float", raw_name="Temperature(C)", min=-40, max=50, unit="°C"),
        Column("humidity", "float", raw_name="Humidity(percentage)", min=0, max=100, unit="%"),
        Column("wind_speed", "float", raw_name="Wind speed (m/s)", min=0, max=50, unit="m/s"),
        # Reported in units of 10 m and capped by the instrument at 2000 (20 km).
        Column("visibility", "float", raw_name="Visibility (10m)", min=0, max=2000, unit="10 m"),
        Column("dew_point_temperature", "float", raw_name="Dew point temperature(C)", min=-50, max=40, unit="°C"),
        # Top-of-atmosphere irradiance is 1361 W/m2, i.e. at most ~4.9 MJ/m2 in an hour.
        Column("solar_radiation", "float", raw_name="Solar Radiation (MJ/m2)", min=0, max=5, unit="MJ/m2"),
        Column("rainfall", "float", raw_name="Rainfall(mm)", min=0, max=300, unit="mm"),
        Column("snowfall", "float", raw_name="Snowfall (cm)", min=0, max=100, unit="cm"),
        Column("seasons", "category", raw_name="Seasons", allowed=("Winter", "Spring", "Summer", "Autumn")),
        Column("holiday", "category", raw_name="Holiday", allowed=("Holiday", "No Holiday")),
        Column("functioning_day", "bool", raw_name="Functioning Day", true_false=("Yes", "No")),
    ),
    key=("date", "hour"),
    target="rented_bike_count",
    leakage=(),
    event_date="date",
    partition_start=date(2017, 12, 1),
    partition_end=date(2018, 11, 30),
    # What the Washington file has as columns (weekday, mnth) is derived here from the date.
    calendar=("weekday", "month", "day_of_year"),
    conditional_rules=(
        ConditionalRule("closed_means_no_rentals", when=("functioning_day", False),
                        then=("rented_bike_count", "==", 0)),
    ),
    slices=(
        Slice("season", "seasons", labels=("winter", "spring", "summer", "autumn")),
        Slice("holiday", "holiday", labels=("holiday", "no_holiday")),
        Slice("functioning_day", "functioning_day", labels=("open", "closed")),
        Slice("hour_band", "hour", bins=(0, 6, 10, 16, 20, 24),
              labels=("night", "morning_peak", "midday", "evening_peak", "late")),
    ),
    expected_rows_per_partition=24,
    # Weather and the hour; not the calendar (a single day always "drifts" on it), nor the
    # functioning day (an operational switch: a closed day would read as drift).
    drift_columns=("hour", "temperature", "humidity", "wind_speed", "visibility", "dew_point_temperature",
                   "solar_radiation", "rainfall", "snowfall"),
    seasonal_period_days=7,
    business_figure=BusinessFigure(unit="bikes", short="bikes_short_per_day", idle="bikes_idle_per_day"),
    # Only say when in the year a row is: season, month, day of year, and the temperatures, which
    # follow the season closely (as mnth, season, temp, atemp for the Washington file). Weekday stays.
    estimator_excludes=("seasons", "date_month", "date_day_of_year", "temperature", "dew_point_temperature"),
)
