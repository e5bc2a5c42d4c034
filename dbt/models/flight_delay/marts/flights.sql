{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='flight_id') }}
-- The entity and label table: the scheduled flight (scored at the start of its operations day,
-- pipelines.features.request_time.prediction_time) and the outcome with the instant it became known.
select
    flight_id,
    flight_date,
    carrier,
    flight_number,
    origin,
    dest,
    route,
    tailnum_hash,
    scheduled_departure_local,
    scheduled_departure_at,
    scheduled_arrival_at,
    is_cancelled,
    arr_delay_minutes,
    is_late_arrival,
    landed_at as label_available_at
from {{ ref('int_flights_landed') }}
{% if var('ds') is not none %}
where flight_date = cast('{{ var("ds") }}' as date)
{% endif %}
