{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['carrier', 'feature_timestamp']) }}
-- The carrier's flights from New York that reached their gate in the last six hours, as of each arrival: how
-- many and their mean arrival delay in [t - 6 h, t] at every arrival instant t (the scheduled arrival in the
-- destination's time plus the delay; a cancelled or diverted flight never arrives). The day's own lateness,
-- known as it happens. The flight_arrivals stream of the spec computes the same as each arrival is published
-- (its window: PT6H), so training's point-in-time join at a flight's prediction time reads what the stream
-- had written by then. Built for the arrivals of the logical date's flights, over the staged days before it.
with arrivals as (
    select carrier, flight_date, landed_at, arr_delay_minutes
    from {{ ref('int_flights_landed') }}
    where landed_at is not null
),

windowed as (
    select
        carrier,
        flight_date,
        landed_at as feature_timestamp,
        count(*) over recent as carrier_arrivals_6h,
        avg(arr_delay_minutes) over recent as carrier_arr_delay_6h
    from arrivals
    window recent as (
        partition by carrier order by landed_at
        range between interval '6 hours' preceding and current row
    )
)

-- Arrivals at the same instant share their window: one row per carrier and instant.
select distinct
    carrier,
    feature_timestamp,
    cast(carrier_arrivals_6h as bigint) as carrier_arrivals_6h,
    cast(carrier_arr_delay_6h as double precision) as carrier_arr_delay_6h
from windowed
{% if var('ds') is not none %}
-- The day's flights, and the arrivals of the day before's that land on it: their windows now hold the day's
-- first arrivals too.
where flight_date = cast('{{ var("ds") }}' as date)
   or cast({{ utc_to_local('feature_timestamp', "'" ~ var('timezone') ~ "'") }} as date) = cast('{{ var("ds") }}' as date)
{% endif %}
