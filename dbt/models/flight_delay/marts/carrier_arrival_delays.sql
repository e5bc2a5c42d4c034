{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['carrier', 'feature_timestamp']) }}
-- The carrier's flights from New York that reached their gate in the last six hours, as of each arrival: how
-- many and their mean arrival delay in [t - 6 h, t] at every arrival instant t (the scheduled arrival in the
-- destination's time plus the delay; a cancelled or diverted flight never arrives). The day's own lateness,
-- known as it happens. The flight_arrivals stream of the spec computes the same as each arrival is published
-- (its window: PT6H), so training's point-in-time join at a flight's prediction time reads what the stream
-- had written by then.
{% set arrivals %}
    select carrier, flight_date, landed_at as event_at, arr_delay_minutes as value
    from {{ ref('int_flights_landed') }}
    where landed_at is not null
{% endset %}
{{ event_window(arrivals, 'carrier', 6, 'carrier_arrivals_6h', 'carrier_arr_delay_6h') }}
