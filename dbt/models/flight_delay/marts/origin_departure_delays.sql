{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['origin', 'feature_timestamp']) }}
-- The departures of the last two hours at each airport, as of each departure: how many left and their mean
-- delay in [t - 2 h, t] at every departure time t (the scheduled departure plus the delay; a cancelled
-- flight never departs). The flight_departures stream of the spec computes the same as each departure is
-- published (its window: PT2H), so training's point-in-time join at a flight's prediction time reads what
-- the stream had written by then. Built for the departures of the logical date, over the staged days
-- before it (a departure's window reaches into the evening before).
with departures as (
    select
        origin,
        flight_date,
        scheduled_departure_at + cast(dep_delay_minutes as integer) * interval '1 minute' as departed_at,
        dep_delay_minutes
    from {{ ref('stg_nycflights13__flights') }}
    where dep_delay_minutes is not null
),

windowed as (
    select
        origin,
        flight_date,
        departed_at as feature_timestamp,
        count(*) over recent as origin_departures_2h,
        avg(dep_delay_minutes) over recent as origin_dep_delay_2h
    from departures
    window recent as (
        partition by origin order by departed_at
        range between interval '2 hours' preceding and current row
    )
)

-- Departures at the same instant share their window: one row per airport and instant.
select distinct
    origin,
    feature_timestamp,
    cast(origin_departures_2h as bigint) as origin_departures_2h,
    cast(origin_dep_delay_2h as double precision) as origin_dep_delay_2h
from windowed
{% if var('ds') is not none %}
-- The day's flights, and the evening before's late ones that left after midnight: their windows now hold
-- the day's first departures too.
where flight_date = cast('{{ var("ds") }}' as date)
   or cast({{ utc_to_local('feature_timestamp', "'" ~ var('timezone') ~ "'") }} as date) = cast('{{ var("ds") }}' as date)
{% endif %}
