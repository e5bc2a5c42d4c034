{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['origin', 'feature_timestamp']) }}
-- The departures of the last two hours at each airport, as of each departure: how many left and their mean
-- delay in [t - 2 h, t] at every departure time t (the scheduled departure plus the delay; a cancelled
-- flight never departs). The flight_departures stream of the spec computes the same as each departure is
-- published (its window: PT2H), so training's point-in-time join at a flight's prediction time reads what
-- the stream had written by then.
{% set departures %}
    select
        origin,
        flight_date,
        scheduled_departure_at + cast(dep_delay_minutes as integer) * interval '1 minute' as event_at,
        dep_delay_minutes as value
    from {{ ref('stg_nycflights13__flights') }}
    where dep_delay_minutes is not null
{% endset %}
{{ event_window(departures, 'origin', 2, 'origin_departures_2h', 'origin_dep_delay_2h') }}
